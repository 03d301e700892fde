// The meshlens console: a single page served by the control plane under
// /ui/, drawing from its JSON API. Pages are addressed by the URL's hash
// (#/graph, #/metrics/node/<mesh>/<name>, #/traces/<id>, #/tap/node/<mesh>/<name>,
// #/config/...),
// so every view has a link.

import './style.css';
import { APIError, get } from './api';
import { installSignOut } from './auth';
import type { Graph } from './model';
import { clear, describeError, h, notice, routeParts, routeQuery } from './ui';

// Each page is its own module, loaded when first shown: the graph page
// (the first page) is drawn without loading or parsing the others and
// their libraries (uPlot, yaml).
const once = <T>(f: () => Promise<T>): (() => Promise<T>) => {
  let p: Promise<T> | undefined;
  return () => (p ??= f());
};
const pages = {
  graph: once(() => import('./graph')),
  metrics: once(() => import('./metrics')),
  traces: once(() => import('./traces')),
  tap: once(() => import('./tap')),
  config: once(() => import('./config')),
};

const app = document.getElementById('app')!;
const meshSelect = document.getElementById('mesh') as HTMLSelectElement;
let leave: (() => void) | undefined;
let routed = 0; // counts route changes: a page that finished loading late is not shown

function currentMesh(): string {
  return meshSelect.value || localStorage.getItem('meshlens.mesh') || '';
}

async function route(): Promise<void> {
  leave?.();
  leave = undefined;
  const token = ++routed;
  const [page = 'graph', ...rest] = routeParts();
  const q = routeQuery();
  for (const a of document.querySelectorAll<HTMLAnchorElement>('nav a')) a.classList.toggle('active', a.dataset.page === page);
  const mesh = currentMesh();
  if (!mesh && page !== 'traces') {
    clear(app);
    app.append(notice('empty', 'No mesh yet: apply one (meshlens apply -f mesh.yaml) and reload.'));
    return;
  }
  try {
    switch (page) {
      case 'graph': {
        // The graph is asked for while its page's module loads.
        const first = get<Graph>('/v1/console/graph', { mesh });
        first.catch(() => {}); // the page handles a failure
        const m = await pages.graph();
        if (token === routed) leave = m.graphPage(app, mesh, first);
        break;
      }
      case 'metrics': {
        const m = await pages.metrics();
        if (token !== routed) return;
        if (rest.length >= 3) leave = m.metricsPage(app, rest[0], rest[1], rest.slice(2).join('/'), q);
        else m.metricsIndex(app, mesh);
        break;
      }
      case 'traces': {
        const m = await pages.traces();
        if (token !== routed) return;
        if (rest.length) m.tracePage(app, rest[0]);
        else m.tracesPage(app, q);
        break;
      }
      case 'tap': {
        const m = await pages.tap();
        if (token !== routed) return;
        if (rest.length >= 3) leave = m.tapPage(app, rest[0], rest[1], rest.slice(2).join('/'), q);
        else void m.tapIndex(app, mesh);
        break;
      }
      case 'config': {
        const m = await pages.config();
        if (token !== routed) return;
        if (rest.length >= 3) m.configResource(app, rest[0], rest[1], rest.slice(2).join('/'), q);
        else m.configIndex(app, mesh);
        break;
      }
      default:
        clear(app);
        app.append(notice('error', `No page ${page}.`));
    }
  } catch (err) {
    if (token !== routed) return;
    clear(app);
    app.append(notice('error', `The page could not be loaded: ${describeError(err)}`));
  }
}

async function start(): Promise<void> {
  installSignOut(document.getElementById('top')!);
  // The first page's module loads while the meshes are asked for.
  const first = routeParts()[0] ?? 'graph';
  if (first in pages) pages[first as keyof typeof pages]().catch(() => {}); // route reports a failure
  try {
    const l = await get<{ items: { name: string }[] }>('/v1/meshes');
    const names = (l.items ?? []).map((m) => m.name).sort();
    const saved = localStorage.getItem('meshlens.mesh');
    for (const n of names) meshSelect.append(h('option', { value: n }, n));
    if (saved && names.includes(saved)) meshSelect.value = saved;
  } catch (err) {
    if (err instanceof APIError && err.status === 401) app.append(notice('empty', 'Sign in with a token to see the console.'));
    else app.append(notice('error', `The control plane's API did not answer: ${describeError(err)}`));
    return;
  }
  meshSelect.addEventListener('change', () => {
    localStorage.setItem('meshlens.mesh', meshSelect.value);
    void route();
  });
  window.addEventListener('hashchange', () => void route());
  void route();
}

start();
