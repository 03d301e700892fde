// Golden-metrics pages: a node's, a service's, a route's or an edge's
// rate, errors by code and latency quantiles over time, the slowest and
// most failing routes, and the instances with their health.

import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { NotAvailable, get, meshResources } from './api';
import { clear, describeError, fmtLatency, fmtPct, fmtRate, h, link, notice } from './ui';

interface Point {
  time: string;
  rps: number | null;
  errorRatio: number | null;
  errorsByCode?: Record<string, number>;
  p50: number | null;
  p90: number | null;
  p99: number | null;
}

interface RouteStat {
  mesh: string;
  route: string;
  service: string;
  rps: number | null;
  errorRatio: number | null;
  p50: number | null;
  p99: number | null;
}

const colours = ['#2f6db3', '#c8312b', '#3f9a54', '#d08a00', '#7a5fb0', '#1f9aa8', '#8c564b'];

/** The index: every node and service of the mesh, with its page's link. */
export async function metricsIndex(root: HTMLElement, mesh: string): Promise<void> {
  clear(root);
  root.append(h('h1', {}, `Golden metrics · ${mesh}`));
  try {
    const res = await meshResources(mesh);
    const list = (title: string, kind: string, names: string[], q?: (n: string) => Record<string, string>) =>
      h('section', {}, h('h2', {}, title), h('ul', { class: 'cols' }, ...names.map((n) => h('li', {}, h('a', { href: link(['metrics', kind, mesh, n], q?.(n)) }, n)))));
    root.append(
      list('Virtual nodes', 'node', (res.get('VirtualNode') ?? []).map((r) => r.name)),
      list('Virtual services', 'service', (res.get('VirtualService') ?? []).map((r) => r.name)),
      list('Routes', 'route', [...(res.get('Route') ?? []).map((r) => `${r.virtualRouter}/${r.name}`), ...(res.get('GatewayRoute') ?? []).map((r) => `${r.virtualGateway}/${r.name}`)]),
    );
    root.append(h('h2', {}, 'Top routes'), await topTables(mesh));
  } catch (err) {
    root.append(notice('error', describeError(err)));
  }
}

export function metricsPage(root: HTMLElement, kind: string, mesh: string, name: string, query: URLSearchParams): () => void {
  clear(root);
  const source = query.get('source') ?? '';
  const title = kind === 'edge' ? `${source} → ${name}` : name;
  const plots = h('div', { class: 'plots', id: 'plots' });
  const side = h('div', { class: 'metrics-side' });
  root.append(
    h('h1', {}, `${{ node: 'Virtual node', service: 'Virtual service', route: 'Route', edge: 'Edge' }[kind] ?? kind} · ${title}`),
    h('p', { class: 'links' },
      h('a', { href: link(['traces'], { service: kind === 'edge' ? source : name }) }, 'traces'), ' ',
      kind === 'node' ? h('a', { href: link(['config', mesh, 'VirtualNode', name]) }, 'config') : null),
    plots,
    side,
  );
  const made: uPlot[] = [];
  let stopped = false;
  let timer: number | undefined;

  const load = async () => {
    try {
      const m = await get<{ points: Point[]; step: string }>('/v1/console/metrics', { kind, mesh, name, source: source || undefined, window: '15m', step: '10s' });
      if (stopped) return;
      made.splice(0).forEach((p) => p.destroy());
      clear(plots);
      drawPlots(plots, m.points, made);
    } catch (err) {
      clear(plots);
      plots.append(err instanceof NotAvailable
        ? notice('na', 'Time series are not available from this control plane (GET /v1/console/metrics).')
        : notice('error', `Metrics could not be loaded: ${describeError(err)}`));
    }
    if (!stopped) timer = window.setTimeout(load, 10000);
  };
  load();
  (async () => {
    side.append(h('h2', {}, 'Top routes'), await topTables(mesh, kind === 'service' ? name : undefined));
    if (kind === 'node') side.append(h('h2', {}, 'Instances'), await instancesTable(mesh, name));
  })();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    made.forEach((p) => p.destroy());
  };
}

function drawPlots(root: HTMLElement, points: Point[], made: uPlot[]): void {
  if (!points.length) {
    root.append(notice('empty', 'No traffic recorded in the last 15 minutes.'));
    return;
  }
  // Start where the traffic starts: a node that came up two minutes
  // ago gets two minutes of plot, not thirteen of zeros before them.
  const first = points.findIndex((p) => (p.rps ?? 0) > 0 || p.p50 !== null);
  if (first > 1) points = points.slice(first - 1);
  // The step still being reported reads as a drop to zero: leave it out.
  const n1 = points.length;
  if (n1 > 2 && !points[n1 - 1].rps && (points[n1 - 2].rps ?? 0) > 0) points = points.slice(0, n1 - 1);
  const t = points.map((p) => Date.parse(p.time) / 1000);
  const n = (v: number | null) => (v === null || v === undefined ? null : v);
  const width = Math.max(320, Math.min(560, Math.floor((root.clientWidth || 1100) / 2) - 20));
  const plot = (id: string, title: string, series: { label: string; data: (number | null)[] }[], fmt: (v: number) => string) => {
    const box = h('figure', { class: 'plot', id }, h('figcaption', {}, title));
    root.append(box);
    made.push(
      new uPlot(
        {
          width,
          height: 200,
          series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: colours[i % colours.length], width: 1.5, spanGaps: false, value: (_u: uPlot, v: number | null) => (v === null ? '–' : fmt(v)) }))],
          axes: [{}, { values: (_u: uPlot, vals: number[]) => vals.map(fmt), size: 70 }],
          scales: { x: { time: true }, y: { range: (_u: uPlot, _min: number, max: number) => [0, max > 0 ? max * 1.1 : 1] } },
          legend: { live: true },
        },
        [t, ...series.map((s) => s.data)] as uPlot.AlignedData,
        box,
      ),
    );
  };
  plot('plot-rps', 'Requests per second', [{ label: 'rps', data: points.map((p) => n(p.rps)) }], (v) => fmtRate(v));
  const codes = [...new Set(points.flatMap((p) => Object.keys(p.errorsByCode ?? {})))].sort();
  plot('plot-errors', 'Errors per second by code',
    codes.length ? codes.map((c) => ({ label: c, data: points.map((p) => p.errorsByCode?.[c] ?? 0) })) : [{ label: 'errors', data: points.map((p) => (p.rps ?? 0) * (p.errorRatio ?? 0)) }],
    (v) => fmtRate(v));
  plot('plot-latency', 'Latency', [
    { label: 'p50', data: points.map((p) => n(p.p50)) },
    { label: 'p90', data: points.map((p) => n(p.p90)) },
    { label: 'p99', data: points.map((p) => n(p.p99)) },
  ], (v) => fmtLatency(v));
}

async function topTables(mesh: string, service?: string): Promise<HTMLElement> {
  try {
    const top = await get<{ slowest: RouteStat[]; failing: RouteStat[]; window: string }>('/v1/console/top', { mesh, limit: '10' });
    const keep = (l: RouteStat[]) => (service ? l.filter((r) => r.service === service) : l);
    const table = (id: string, title: string, l: RouteStat[]) =>
      h('div', {}, h('h3', {}, title),
        l.length === 0 ? notice('empty', 'none in the window') :
        h('table', { class: 'data', id },
          h('thead', {}, h('tr', {}, ...['route', 'service', 'rate', 'errors', 'p50', 'p99'].map((x) => h('th', {}, x)))),
          h('tbody', {}, ...l.map((r) => h('tr', {},
            h('td', {}, h('a', { href: link(['metrics', 'route', r.mesh || mesh, r.route]) }, r.route || '(none)')),
            h('td', {}, r.service), h('td', { class: 'num' }, fmtRate(r.rps)), h('td', { class: 'num' }, fmtPct(r.errorRatio)),
            h('td', { class: 'num' }, fmtLatency(r.p50)), h('td', { class: 'num' }, fmtLatency(r.p99)))))));
    return h('div', { class: 'top' }, table('top-slow', `Slowest (p99, last ${top.window})`, keep(top.slowest ?? [])), table('top-failing', `Most failing (last ${top.window})`, keep(top.failing ?? [])));
  } catch (err) {
    return err instanceof NotAvailable ? notice('na', 'Route statistics are not available from this control plane (GET /v1/console/top).') : notice('error', describeError(err));
  }
}

/**
 * A virtual node's instances: the registered ones (the resource's
 * describe view) beside how the proxies that send to them see them
 * (GET /v1/console/instances: health checks, ejections), matched by
 * address.
 */
async function instancesTable(mesh: string, node: string): Promise<HTMLElement> {
  interface Row { id: string; address: string; registered: string; view: string; detail: string }
  const rows = new Map<string, Row>();
  let viewNote: HTMLElement | null = null;
  try {
    const d = await get<any>(`/v1/meshes/${encodeURIComponent(mesh)}/virtualNodes/${encodeURIComponent(node)}`, { view: 'describe' });
    for (const i of d.instances ?? []) {
      const addr = `${i.address}:${i.port}`;
      rows.set(addr, { id: i.id ?? '', address: addr, registered: i.healthStatus ?? '', view: '', detail: '' });
    }
  } catch (err) {
    return notice('error', describeError(err));
  }
  try {
    const r = await get<{ instances: any[] }>('/v1/console/instances', { mesh, node });
    for (const i of r.instances ?? []) {
      const addr = String(i.address ?? '');
      const row = rows.get(addr) ?? { id: '', address: addr, registered: '', view: '', detail: '' };
      row.view = i.health ?? '';
      row.detail = (i.observers ?? []).map((o: any) =>
        `${o.proxy}: health check ${o.healthCheck}${o.ejected ? ', ejected' : ''}${o.edsHealthy === false ? ', EDS unhealthy' : ''}${o.connected === false ? ' (disconnected)' : ''}`).join('; ');
      rows.set(addr, row);
    }
  } catch (err) {
    viewNote = err instanceof NotAvailable
      ? notice('na', "The proxies' view of instances is not available from this control plane (GET /v1/console/instances).")
      : notice('error', describeError(err));
  }
  if (!rows.size) return notice('empty', 'No registered instances.');
  return h('div', {},
    h('table', { class: 'data', id: 'instances' },
      h('thead', {}, h('tr', {}, ...['instance', 'address', 'registered', "callers' view", 'seen by'].map((x) => h('th', {}, x)))),
      h('tbody', {}, ...[...rows.values()].map((r) => h('tr', { class: (r.view || r.registered).toLowerCase(), 'data-view': r.view },
        h('td', {}, r.id), h('td', {}, r.address), h('td', {}, r.registered), h('td', {}, r.view || '–'), h('td', {}, r.detail))))),
    viewNote);
}
