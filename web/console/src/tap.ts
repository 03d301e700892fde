// Live tap: a sample of the live requests of a virtual node's or
// gateway's proxies (GET /v1/tap, newline-delimited JSON), a row per
// request as it finishes. The tap runs only while the page is open: it
// stops when the user leaves, presses Stop or its duration ends.

import { authFetch } from './auth';
import { APIError, meshResources, withParams } from './api';
import { clear, describeError, fmtLatency, h, link, notice } from './ui';

interface TapEvent {
  time: string;
  proxy?: string;
  direction: string;
  method: string;
  authority: string;
  path: string;
  status: number;
  latencyMs: number;
  source: string;
  destination?: string;
  route?: string;
  responseFlags?: string;
  upstreamHost?: string;
  headers?: Record<string, string>;
  error?: string;
}

/** Rows kept on the page; older ones are dropped. */
const maxRows = 200;

/** The index: every virtual node and gateway of the mesh, to tap. */
export async function tapIndex(root: HTMLElement, mesh: string): Promise<void> {
  clear(root);
  root.append(h('h1', {}, `Live tap · ${mesh}`));
  try {
    const res = await meshResources(mesh);
    const list = (title: string, kind: string, names: string[]) =>
      h('section', {}, h('h2', {}, title), h('ul', { class: 'cols' }, ...names.map((n) => h('li', {}, h('a', { href: link(['tap', kind, mesh, n]) }, n)))));
    root.append(
      list('Virtual nodes', 'node', (res.get('VirtualNode') ?? []).map((r) => r.name)),
      list('Virtual gateways', 'gateway', (res.get('VirtualGateway') ?? []).map((r) => r.name)),
    );
  } catch (err) {
    root.append(notice('error', describeError(err)));
  }
}

/** The tap of one node ("node" or "gateway"); returns what stops it. */
export function tapPage(root: HTMLElement, kind: string, mesh: string, name: string, query: URLSearchParams): () => void {
  clear(root);
  const state = h('span', { class: 'tap-state', 'data-state': 'idle' }, 'stopped');
  const button = h('button', { type: 'button', id: 'tap-toggle' }, 'Start');
  const prefix = h('input', { type: 'text', id: 'tap-prefix', placeholder: 'path prefix, e.g. /api', value: query.get('path_prefix') ?? '' });
  const body = h('tbody', { id: 'tap-rows' });
  const problems = h('div', {});
  root.append(
    h('h1', {}, `Live tap · ${kind === 'gateway' ? 'virtual gateway' : 'virtual node'} ${name}`),
    h('p', { class: 'links' }, h('a', { href: link(['metrics', 'node', mesh, name]) }, 'metrics'), ' · ', h('a', { href: link(['tap']) }, 'all nodes')),
    h('div', { class: 'tap-controls' }, button, ' ', prefix, ' ', state),
    h('p', { class: 'muted' }, 'A sample of live requests (at most 100 per second per proxy), for 60 s. Header values are not shown.'),
    problems,
    h('table', { class: 'data tap' },
      h('thead', {}, h('tr', {}, ...['time', 'proxy', 'method', 'authority', 'path', 'status', 'latency', 'source', 'destination', 'route', 'flags', 'upstream'].map((c) => h('th', {}, c)))),
      body),
  );

  let abort: AbortController | undefined;
  const setState = (s: 'live' | 'idle' | 'error', text: string) => {
    state.dataset.state = s;
    state.textContent = text;
    button.textContent = s === 'live' ? 'Stop' : 'Start';
  };
  const stop = () => {
    abort?.abort();
    abort = undefined;
  };
  const addRow = (ev: TapEvent) => {
    const status = ev.status ? String(ev.status) : '–';
    const row = h('tr', { class: ev.status >= 500 || ev.status === 0 ? 'tap-fail' : '' },
      h('td', { class: 'num' }, new Date(ev.time).toLocaleTimeString()),
      h('td', {}, (ev.proxy ?? '').replace(/^mesh\//, '')),
      h('td', {}, ev.method),
      h('td', {}, ev.authority),
      h('td', { class: 'tap-path' }, ev.path),
      h('td', { class: 'num tap-status' }, status),
      h('td', { class: 'num' }, fmtLatency(ev.latencyMs / 1000)),
      h('td', {}, ev.source),
      h('td', {}, ev.destination ?? ''),
      h('td', {}, ev.route ?? ''),
      h('td', {}, ev.responseFlags ?? ''),
      h('td', {}, ev.upstreamHost ?? ''),
    );
    body.prepend(row);
    while (body.children.length > maxRows) body.lastElementChild?.remove();
  };
  const start = async () => {
    stop();
    const ctl = new AbortController();
    abort = ctl;
    clear(problems);
    setState('live', 'tapping…');
    const path = withParams('/v1/tap', {
      mesh, kind: kind === 'gateway' ? 'virtualGateway' : 'virtualNode', name,
      duration: '60s', path_prefix: prefix.value.trim() || undefined,
    });
    try {
      const resp = await authFetch(path, { signal: ctl.signal, headers: { Accept: 'application/x-ndjson' } });
      if (!resp.ok || !resp.body) {
        const text = await resp.text();
        let msg = `${resp.status} ${resp.statusText}`;
        try {
          msg = JSON.parse(text).message ?? msg;
        } catch {
          /* not JSON: the status says it */
        }
        throw new APIError(resp.status, '', msg);
      }
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (!line.trim()) continue;
          const ev = JSON.parse(line) as TapEvent;
          if (ev.error) problems.append(notice('error', `proxy ${ev.proxy ?? ''}: ${ev.error}`));
          else addRow(ev);
        }
      }
      if (abort === ctl) {
        abort = undefined;
        setState('idle', 'ended (60 s)');
      }
    } catch (err) {
      if (ctl.signal.aborted) return;
      abort = undefined;
      setState('error', 'failed');
      problems.append(notice('error', describeError(err)));
    }
  };
  button.addEventListener('click', () => {
    if (abort) {
      stop();
      setState('idle', 'stopped');
    } else {
      void start();
    }
  });
  prefix.addEventListener('change', () => {
    if (abort) void start();
  });
  void start();
  return stop;
}
