// The meshlens console: a single page served by the control plane under
// /ui/, drawing from its JSON API. Pages are addressed by the URL's hash
// (#/graph, #/metrics/node/<mesh>/<name>, #/traces/<id>, #/tap/node/<mesh>/<name>,
// #/config/...),
// so every view has a link.

import './style.css';
import { get } from './api';
import { configIndex, configResource } from './config';
import { graphPage } from './graph';
import { metricsIndex, metricsPage } from './metrics';
import { tapIndex, tapPage } from './tap';
import { tracePage, tracesPage } from './traces';
import { clear, describeError, h, notice, routeParts, routeQuery } from './ui';

const app = document.getElementById('app')!;
const meshSelect = document.getElementById('mesh') as HTMLSelectElement;
let leave: (() => void) | undefined;

function currentMesh(): string {
  return meshSelect.value || localStorage.getItem('meshlens.mesh') || '';
}

function route(): void {
  leave?.();
  leave = undefined;
  const [page = 'graph', ...rest] = routeParts();
  const q = routeQuery();
  for (const a of document.querySelectorAll<HTMLAnchorElement>('nav a')) a.classList.toggle('active', a.dataset.page === page);
  const mesh = currentMesh();
  if (!mesh && page !== 'traces') {
    clear(app);
    app.append(notice('empty', 'No mesh yet: apply one (meshlens apply -f mesh.yaml) and reload.'));
    return;
  }
  switch (page) {
    case 'graph':
      leave = graphPage(app, mesh);
      break;
    case 'metrics':
      if (rest.length >= 3) leave = metricsPage(app, rest[0], rest[1], rest.slice(2).join('/'), q);
      else metricsIndex(app, mesh);
      break;
    case 'traces':
      if (rest.length) tracePage(app, rest[0]);
      else tracesPage(app, q);
      break;
    case 'tap':
      if (rest.length >= 3) leave = tapPage(app, rest[0], rest[1], rest.slice(2).join('/'), q);
      else void tapIndex(app, mesh);
      break;
    case 'config':
      if (rest.length >= 3) configResource(app, rest[0], rest[1], rest.slice(2).join('/'), q);
      else configIndex(app, mesh);
      break;
    default:
      clear(app);
      app.append(notice('error', `No page ${page}.`));
  }
}

async function start(): Promise<void> {
  try {
    const l = await get<{ items: { name: string }[] }>('/v1/meshes');
    const names = (l.items ?? []).map((m) => m.name).sort();
    const saved = localStorage.getItem('meshlens.mesh');
    for (const n of names) meshSelect.append(h('option', { value: n }, n));
    if (saved && names.includes(saved)) meshSelect.value = saved;
  } catch (err) {
    app.append(notice('error', `The control plane's API did not answer: ${describeError(err)}`));
    return;
  }
  meshSelect.addEventListener('change', () => {
    localStorage.setItem('meshlens.mesh', meshSelect.value);
    route();
  });
  window.addEventListener('hashchange', route);
  route();
}

start();
