// Traces from the control plane's trace store, through Jaeger's query
// API: a search by service, status and duration, and a waterfall of one
// trace.

import { NotAvailable, get } from './api';
import { clear, describeError, fmtMicros, h, link, notice } from './ui';

interface Span {
  traceID: string;
  spanID: string;
  operationName: string;
  references?: { refType: string; spanID: string }[];
  startTime: number; // microseconds since the epoch
  duration: number; // microseconds
  tags?: { key: string; value: unknown }[];
  processID: string;
}

interface Trace {
  traceID: string;
  spans: Span[];
  processes: Record<string, { serviceName: string }>;
}

function isError(s: Span): boolean {
  return (s.tags ?? []).some((t) => (t.key === 'error' && String(t.value) === 'true') || (t.key === 'http.status_code' && Number(t.value) >= 500));
}

export function tracesPage(root: HTMLElement, query: URLSearchParams): void {
  clear(root);
  const service = h('select', { id: 'trace-service', 'aria-label': 'service' });
  const status = h('select', { id: 'trace-status', 'aria-label': 'status' }, h('option', { value: '' }, 'any status'), h('option', { value: 'error' }, 'errors only'));
  const minD = h('input', { id: 'trace-min', placeholder: 'min duration, e.g. 100ms', size: 18, value: query.get('minDuration') ?? '' });
  const lookback = h('select', { id: 'trace-lookback' }, ...['15m', '1h', '6h', '24h'].map((v) => h('option', { value: v, selected: v === '1h' }, `last ${v}`)));
  const btn = h('button', { type: 'submit' }, 'search');
  const form = h('form', { class: 'toolbar', id: 'trace-search' }, service, status, minD, lookback, btn);
  const results = h('div', { id: 'trace-results' });
  root.append(h('h1', {}, 'Traces'), form, results);

  const search = async () => {
    clear(results);
    if (!service.value) {
      results.append(notice('empty', 'No traces yet: the trace store has no services. Traces appear when the mesh sends spans (see docs/tracing.md).'));
      return;
    }
    const tags = status.value === 'error' ? JSON.stringify({ error: 'true' }) : undefined;
    try {
      const r = await get<{ data: Trace[] }>('/api/traces', { service: service.value, tags, minDuration: minD.value.trim() || undefined, lookback: lookback.value, limit: '50' });
      const traces = r.data ?? [];
      if (!traces.length) {
        results.append(notice('empty', 'No trace matches.'));
        return;
      }
      results.append(h('table', { class: 'data', id: 'trace-list' },
        h('thead', {}, h('tr', {}, ...['trace', 'root', 'start', 'duration', 'spans', 'errors'].map((x) => h('th', {}, x)))),
        h('tbody', {}, ...traces.map((t) => {
          const root = rootSpan(t);
          const errs = t.spans.filter(isError).length;
          return h('tr', { class: errs ? 'failing' : '' },
            h('td', {}, h('a', { href: link(['traces', t.traceID]) }, t.traceID.slice(0, 16))),
            h('td', {}, root ? `${t.processes[root.processID]?.serviceName ?? ''}: ${root.operationName}` : ''),
            h('td', {}, root ? new Date(root.startTime / 1000).toLocaleTimeString() : ''),
            h('td', { class: 'num' }, root ? fmtMicros(root.duration) : ''),
            h('td', { class: 'num' }, String(t.spans.length)),
            h('td', { class: 'num' }, String(errs)));
        }))));
    } catch (err) {
      results.append(notice('error', `Search failed: ${describeError(err)}`));
    }
  };
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    search();
  });
  (async () => {
    try {
      const s = await get<{ data: string[] | null }>('/api/services');
      const names = (s.data ?? []).slice().sort();
      const want = query.get('service') ?? '';
      if (!names.length) service.append(h('option', { value: '' }, 'no services yet'));
      for (const n of names) service.append(h('option', { value: n, selected: n === want }, n));
      if (query.get('status') === 'error') status.value = 'error';
      search();
    } catch (err) {
      results.append(err instanceof NotAvailable ? notice('na', 'The trace store is not available on this control plane (GET /api/services).') : notice('error', describeError(err)));
    }
  })();
}

function rootSpan(t: Trace): Span | undefined {
  const ids = new Set(t.spans.map((s) => s.spanID));
  return t.spans.filter((s) => !(s.references ?? []).some((r) => r.refType === 'CHILD_OF' && ids.has(r.spanID))).sort((a, b) => a.startTime - b.startTime)[0];
}

/** One trace as a waterfall: a row per span, indented under its parent, a bar over the trace's time. */
export async function tracePage(root: HTMLElement, id: string): Promise<void> {
  clear(root);
  root.append(h('h1', {}, `Trace ${id}`), h('p', {}, h('a', { href: '#/traces' }, '← search')));
  let t: Trace | undefined;
  try {
    const r = await get<{ data: Trace[] }>(`/api/traces/${encodeURIComponent(id)}`);
    t = r.data?.[0];
  } catch (err) {
    root.append(err instanceof NotAvailable ? notice('na', 'The trace store is not available on this control plane.') : notice('error', describeError(err)));
    return;
  }
  if (!t || !t.spans.length) {
    root.append(notice('empty', 'The trace has no spans.'));
    return;
  }
  const start = Math.min(...t.spans.map((s) => s.startTime));
  const end = Math.max(...t.spans.map((s) => s.startTime + s.duration));
  const total = Math.max(1, end - start);
  const children = new Map<string, Span[]>();
  const ids = new Set(t.spans.map((s) => s.spanID));
  const roots: Span[] = [];
  for (const s of t.spans) {
    const parent = (s.references ?? []).find((r) => r.refType === 'CHILD_OF' && ids.has(r.spanID))?.spanID;
    if (parent) children.set(parent, [...(children.get(parent) ?? []), s]);
    else roots.push(s);
  }
  const rows: HTMLElement[] = [];
  const walk = (s: Span, depth: number) => {
    const left = ((s.startTime - start) / total) * 100;
    const width = Math.max(0.3, (s.duration / total) * 100);
    const svc = t!.processes[s.processID]?.serviceName ?? '';
    const bar = h('div', { class: `bar${isError(s) ? ' failing' : ''}` });
    bar.style.left = `${left}%`;
    bar.style.width = `${width}%`;
    const label = h('div', { class: 'span-label', title: (s.tags ?? []).map((x) => `${x.key}=${String(x.value)}`).join('\n') }, `${svc}: ${s.operationName}`);
    label.style.paddingLeft = `${depth * 14 + 4}px`;
    rows.push(h('div', { class: 'span-row', 'data-span-id': s.spanID }, label, h('div', { class: 'span-track' }, bar, h('span', { class: 'span-dur' }, fmtMicros(s.duration)))));
    for (const c of (children.get(s.spanID) ?? []).sort((a, b) => a.startTime - b.startTime)) walk(c, depth + 1);
  };
  roots.sort((a, b) => a.startTime - b.startTime).forEach((r) => walk(r, 0));
  root.append(
    h('p', { class: 'muted' }, `${t.spans.length} spans · ${fmtMicros(total)} · ${new Date(start / 1000).toLocaleString()}`),
    h('div', { class: 'waterfall', id: 'waterfall' }, ...rows),
  );
}
