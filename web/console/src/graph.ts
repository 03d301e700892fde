// The service graph page: gateways, virtual nodes and virtual services
// (each service a box with its versions inside), edges labelled with the
// observed traffic, kept live over server-sent events. Positions are kept
// between updates so that nodes coming and going do not reshuffle the
// rest. A large graph is drawn more plainly, to be drawn at once (see
// render).

import cytoscape from 'cytoscape';
import { APIError, NotAvailable, get, streamEvents } from './api';
import { EdgeLayer, LayerEdge } from './edgelayer';
import { Graph, GraphEdge, GraphNode, configGraph, nodeID, nodeRates } from './model';
import { clear, describeError, fmtLatency, fmtPct, fmtRate, h, link, notice } from './ui';

/**
 * forceLayout is set once the force-directed layout (fcose, with its
 * layout libraries) is loaded: only graphs small enough to be laid out by
 * force need it, so a large graph is drawn without loading or parsing it.
 */
let forceLayout: Promise<void> | undefined;

function loadForceLayout(): Promise<void> {
  forceLayout ??= import('cytoscape-fcose').then((m) => {
    cytoscape.use(m.default);
  });
  return forceLayout;
}

/** afterPaint runs f once the browser has painted the next frame (what is drawn now is on the screen). */
function afterPaint(f: () => void): void {
  requestAnimationFrame(() => setTimeout(f, 0));
}

const badgeIcon: Record<string, string> = {
  retries: '↻',
  timeout: '⏱',
  outlierDetection: '⊘',
  circuitBreaker: '⚡',
  fault: '☢',
  rateLimit: '≋',
  healthCheck: '♥',
  tls: '🔒',
};

/** Positions of nodes by id, kept across page visits. */
const positions = new Map<string, cytoscape.Position>();

/**
 * graphPage draws the graph of mesh into root and follows its live
 * updates; first, when given, is the graph's first answer, already asked
 * for (the page asks for it itself otherwise). It returns the function
 * that leaves the page.
 */
export function graphPage(root: HTMLElement, mesh: string, first?: Promise<Graph>): () => void {
  const status = h('div', { class: 'graph-status', id: 'graph-status' });
  const find = h('input', { type: 'search', id: 'graph-find', placeholder: 'find a node…', 'aria-label': 'find a node' });
  const hideBtn = h('button', { type: 'button', id: 'graph-hide' }, 'hide found');
  const showBtn = h('button', { type: 'button', id: 'graph-show' }, 'show all');
  const idleBox = h('input', { type: 'checkbox', id: 'graph-idle', checked: true });
  const unknownBox = h('input', { type: 'checkbox', id: 'graph-unknown', checked: true });
  const toolbar = h(
    'div',
    { class: 'toolbar' },
    find,
    hideBtn,
    showBtn,
    h('label', {}, idleBox, ' idle edges'),
    h('label', {}, unknownBox, ' unknown callers'),
    h('span', { class: 'legend' },
      h('span', { class: 'sw healthy' }), 'healthy ', h('span', { class: 'sw degraded' }), 'errors ≥1% ',
      h('span', { class: 'sw failing' }), 'errors ≥5% ', h('span', { class: 'sw idle' }), 'idle'),
  );
  const canvas = h('div', { id: 'graph', class: 'graph' });
  const side = h('aside', { class: 'side', id: 'graph-side' }, h('p', { class: 'muted' }, 'Select a node or an edge.'));
  const tables = h('div', { class: 'graph-tables' });
  clear(root);
  root.append(h('h1', {}, `Service graph · ${mesh}`), status, toolbar, h('div', { class: 'graph-wrap' }, canvas, side), tables);

  const cy = cytoscape({
    container: canvas,
    wheelSensitivity: 0.3,
    minZoom: 0.2,
    maxZoom: 3,
    style: graphStyle(),
  });
  // A large graph's edges (Cytoscape draws the nodes).
  const layer = new EdgeLayer(cy, canvas);
  const hidden = new Set<string>();
  let current: Graph | undefined;
  let tabled: Graph | undefined; // the graph the tables show
  let stopped = false;
  const streamCtl = new AbortController();
  let timer: number | undefined;

  // The drawn nodes and their places on the canvas, as a data attribute:
  // what the browser test reads to find, click and follow nodes. Every
  // graph node has a place: a version drawn inside its service's node
  // (a large graph's single-version service) has that node's. A childless
  // node's place on the canvas is computed from its position and the
  // viewport: asking Cytoscape for it would measure every service box
  // first.
  const publish = () => {
    const zoom = cy.zoom();
    const pan = cy.pan();
    const at = new Map<string, [number, number]>();
    const pos: Record<string, [number, number]> = {};
    cy.nodes().forEach((n) => {
      const p = n.isParent() ? n.renderedPosition() : { x: n.position('x') * zoom + pan.x, y: n.position('y') * zoom + pan.y };
      const xy: [number, number] = [Math.round(p.x), Math.round(p.y)];
      at.set(n.id(), xy);
      pos[n.id()] = xy;
      for (const m of (n.data('members') as string[] | undefined) ?? []) pos[m] = xy;
    });
    canvas.dataset.nodes = JSON.stringify(pos);
    const mid: Record<string, [number, number]> = {};
    const middle = (id: string, source: string, target: string) => {
      const a = at.get(source)!;
      const b = at.get(target)!;
      mid[id] = [Math.round((a[0] + b[0]) / 2), Math.round((a[1] + b[1]) / 2)];
    };
    // The midpoint of the straight line between the ends (edges into
    // a service box are straight): renderedMidpoint is only known once drawn.
    cy.edges().forEach((e) => middle(e.id(), e.data('source'), e.data('target')));
    for (const e of layer.list()) middle(e.id, e.source, e.target);
    canvas.dataset.edges = JSON.stringify(mid);
  };
  // Viewport changes come many to a frame while panning: publish once a
  // frame. Adding and removing elements needs no listener: render is
  // always followed by publish (a listener on 'add' would run once per
  // element, quadratic in the size of the graph).
  let publishQueued = false;
  cy.on('viewport', () => {
    if (publishQueued) return;
    publishQueued = true;
    requestAnimationFrame(() => {
      publishQueued = false;
      if (!stopped) publish();
    });
  });
  cy.on('layoutstop', publish);
  // The nodes the find box matches are highlighted and the others dimmed,
  // and stay so as live updates redraw them.
  function highlight(): void {
    const q = find.value.trim().toLowerCase();
    cy.batch(() => {
      cy.nodes().removeClass('found dim');
      if (!q) return;
      const found = cy.nodes().filter((n) => String(n.data('label') ?? '').toLowerCase().includes(q));
      found.addClass('found');
      cy.nodes().not(found).not(found.ancestors()).addClass('dim');
    });
  }
  // mark, when given, names the performance mark set once the frame that
  // shows g is painted: the console benchmark reads
  // 'meshlens:graph-first-paint' and 'meshlens:graph-update' (its
  // detail.received is when the update came in; detail.shown the graph
  // nodes drawn, each as a node of its own or inside its service's).
  // The status line and the tables under the graph follow that frame:
  // they are not the graph (and the first local time formatted loads the
  // browser's locale data, which takes a while).
  const apply = (g: Graph, mark?: string, received?: number) => {
    current = g;
    const drawn = render(cy, layer, g, hidden, idleBox.checked, unknownBox.checked);
    if (find.value.trim()) highlight();
    publish();
    const detail = mark && {
      received, nodes: g.nodes.length, edges: g.edges.length, shown: drawn.shown, drawnNodes: cy.nodes().length, drawnEdges: cy.edges().length + layer.list().length,
    };
    afterPaint(() => {
      if (stopped) return;
      if (mark) performance.mark(mark, { detail });
      if (current !== g || tabled === g) return;
      tabled = g;
      clear(status);
      if (g.configOnly) {
        status.append(notice('na', 'Traffic metrics are not available from this control plane (GET /v1/console/graph): the graph shows the configured topology only, with no rates.'));
      } else {
        status.append(h('span', { class: 'muted', id: 'graph-updated' }, `live · window ${g.window ?? ''} · updated ${new Date(g.generatedAt ?? Date.now()).toLocaleTimeString()}`));
      }
      renderTables(tables, g, mesh);
    });
  };
  const fail = (err: unknown) => {
    clear(status);
    status.append(notice('error', `The graph could not be loaded: ${describeError(err)}`));
  };

  // show draws g once the layout it needs is loaded; draws happen one
  // after the other, in the order asked, and one that fails (reported to
  // the caller) does not stop the next.
  let drawing: Promise<void> = Promise.resolve();
  const show = (g: Graph, mark?: string, received?: number): Promise<void> => {
    const next = drawing.then(async () => {
      if (!isLarge(g, hidden, unknownBox.checked)) await loadForceLayout();
      if (!stopped) apply(g, mark, received);
    });
    drawing = next.catch(() => {});
    return next;
  };

  const pollConfig = async () => {
    try {
      await show(await configGraph(mesh));
    } catch (err) {
      fail(err);
    }
    if (!stopped) timer = window.setTimeout(pollConfig, 3000);
  };

  (async () => {
    try {
      const g = await (first ?? get<Graph>('/v1/console/graph', { mesh }));
      if (stopped) return;
      await show(g, 'meshlens:graph-first-paint');
      if (stopped) return;
      // The updates stream over fetch (it carries the token); a stream
      // that ends or fails is opened again after a pause.
      const updated = () => document.getElementById('graph-updated');
      const follow = async (): Promise<void> => {
        const path = `/v1/console/graph/stream?mesh=${encodeURIComponent(mesh)}`;
        while (!stopped) {
          try {
            await streamEvents(path, streamCtl.signal, (name, data) => {
              if (name !== 'graph') return;
              const received = performance.now();
              let g: Graph;
              try {
                g = JSON.parse(data);
              } catch (err) {
                fail(err);
                return;
              }
              show(g, 'meshlens:graph-update', received).catch(fail);
            });
          } catch (err) {
            if (stopped) return;
            if (err instanceof APIError && (err.status === 401 || err.status === 403)) {
              fail(err);
              return;
            }
          }
          if (stopped) return;
          updated()?.replaceChildren('reconnecting…');
          await new Promise((r) => window.setTimeout(r, 2000));
        }
      };
      void follow();
    } catch (err) {
      if (stopped) return;
      if (err instanceof NotAvailable) pollConfig();
      else fail(err);
    }
  })();

  const refilter = () => {
    if (current) show(current).catch(fail);
  };
  idleBox.addEventListener('change', refilter);
  unknownBox.addEventListener('change', refilter);
  find.addEventListener('input', highlight);
  hideBtn.addEventListener('click', () => {
    cy.nodes('.found').forEach((n) => {
      hidden.add(n.id());
      for (const m of (n.data('members') as string[] | undefined) ?? []) hidden.add(m);
    });
    find.value = '';
    cy.nodes().removeClass('found dim');
    refilter();
  });
  showBtn.addEventListener('click', () => {
    hidden.clear();
    refilter();
  });
  cy.on('tap', 'node', (ev) => showNode(side, mesh, current, ev.target.data('members') ?? [ev.target.id()]));
  cy.on('tap', 'edge', (ev) => showEdge(side, mesh, current, ev.target.data('edge')));
  // A large graph's edges are not Cytoscape's: a click off the nodes may be on one.
  cy.on('tap', (ev) => {
    if (layer.list().length === 0) return;
    const e = ev.target === cy ? layer.hit(ev.position) : undefined;
    layer.select(e?.id);
    if (e) showEdge(side, mesh, current, current?.edges.find((x) => x.id === e.id)!);
  });
  cy.on('dragfree', 'node', (ev) => positions.set(ev.target.id(), { ...ev.target.position() }));

  return () => {
    stopped = true;
    streamCtl.abort();
    if (timer) clearTimeout(timer);
    cy.nodes().forEach((n) => {
      positions.set(n.id(), { ...n.position() });
    });
    layer.destroy();
    cy.destroy();
  };
}

function graphStyle(): cytoscape.StylesheetJson {
  return [
    {
      selector: 'node',
      style: {
        label: 'data(label)',
        'font-size': 11,
        'min-zoomed-font-size': 6,
        'text-valign': 'bottom',
        'text-margin-y': 4,
        'background-color': '#6b8fb5',
        width: 26,
        height: 26,
        color: '#1d2733',
        'text-wrap': 'wrap',
      },
    },
    { selector: 'node.gateway', style: { shape: 'round-diamond', 'background-color': '#7a5fb0', width: 32, height: 32 } },
    { selector: 'node.unknown', style: { shape: 'round-triangle', 'background-color': '#9aa3ad', 'border-style': 'dashed', 'border-width': 2 } },
    {
      selector: 'node.service',
      style: {
        shape: 'round-rectangle',
        'background-color': '#eef3f8',
        'background-opacity': 1,
        'border-width': 1,
        'border-color': '#93a8be',
        'text-valign': 'top',
        'text-halign': 'center',
        'text-margin-y': -4,
        'font-weight': 'bold',
        padding: '14px',
      },
    },
    {
      selector: 'node.version',
      style: {
        shape: 'round-rectangle',
        width: 'data(w)',
        height: 24,
        'background-color': '#4f7cac',
        color: '#ffffff',
        'text-valign': 'center',
        'text-margin-y': 0,
      },
    },
    {
      // A large graph's single-version service: one box, titled with the
      // service's name, the version's name under it.
      selector: 'node.merged',
      style: {
        width: 'data(w)',
        height: 36,
        'text-valign': 'center',
        'text-margin-y': 0,
        'font-weight': 'normal',
        padding: '0px',
      },
    },
    { selector: 'node.found', style: { 'border-width': 3, 'border-color': '#e0a000' } },
    { selector: 'node.dim', style: { opacity: 0.25 } },
    { selector: 'node:selected', style: { 'border-width': 3, 'border-color': '#1d2733' } },
    {
      selector: 'edge',
      style: {
        width: 2,
        'curve-style': 'bezier',
        'target-arrow-shape': 'triangle',
        'line-color': '#3f9a54',
        'target-arrow-color': '#3f9a54',
      },
    },
    {
      selector: 'edge',
      style: {
        label: 'data(label)',
        'font-size': 9,
        'min-zoomed-font-size': 6,
        'text-wrap': 'wrap',
        'text-background-color': '#ffffff',
        'text-background-opacity': 0.85,
        'text-background-padding': '2px',
        color: '#1d2733',
      },
    },
    { selector: 'edge.degraded', style: { 'line-color': '#d08a00', 'target-arrow-color': '#d08a00' } },
    { selector: 'edge.failing', style: { 'line-color': '#c8312b', 'target-arrow-color': '#c8312b', width: 3 } },
    { selector: 'edge.idle', style: { 'line-color': '#b8c0c8', 'target-arrow-color': '#b8c0c8', 'line-style': 'dashed' } },
    { selector: 'edge.unknown-source', style: { 'line-style': 'dotted' } },
    { selector: 'edge:selected', style: { width: 4 } },
  ];
}

function edgeLabel(e: GraphEdge): string {
  const lock = e.mtls ? '🔒 ' : '';
  if (e.idle || e.rps === null) return `${lock}idle`;
  const lines = [`${lock}${fmtRate(e.rps)} · ${fmtPct(e.errorRatio)} err`, `p50 ${fmtLatency(e.p50)} · p99 ${fmtLatency(e.p99)}`];
  const split = (e.split ?? []).filter((s) => s.configuredShare !== undefined && s.configuredShare !== null);
  if (split.length > 1) lines.push(split.map((s) => `${s.virtualNode} ${fmtPct(s.observedShare ?? 0, 0)} (cfg ${fmtPct(s.configuredShare, 0)})`).join('\n'));
  return lines.join('\n');
}

function nodeLabel(n: GraphNode): string {
  const b = (n.badges ?? []).map((x) => badgeIcon[x] ?? '•').join('');
  return b ? `${n.name} ${b}` : n.name;
}

/** shownNode says whether n is drawn, given what is hidden. */
function shownNode(n: GraphNode, hidden: Set<string>, showUnknown: boolean): boolean {
  return !hidden.has(n.id) && (n.kind !== 'unknown' || showUnknown);
}

/**
 * isLarge says whether g has more than forceLayoutLimit drawn nodes
 * (service boxes not counted): such a graph is laid out in tiers, not by
 * force, and drawn more plainly (see render).
 */
function isLarge(g: Graph, hidden: Set<string>, showUnknown: boolean): boolean {
  let drawn = 0;
  for (const n of g.nodes) if (n.kind !== 'virtualService' && shownNode(n, hidden, showUnknown)) drawn++;
  return drawn > forceLayoutLimit;
}

function labelWidth(label: string): number {
  return Math.max(40, Math.max(...label.split('\n').map((l) => l.length)) * 7 + 16);
}

/**
 * render puts g into cy (and a large graph's edges into layer), keeping
 * known positions and laying out only what is new, and says how many of
 * g's nodes it drew (shown: each as a node of its own, or inside its
 * service's node).
 *
 * A large graph (isLarge) is drawn with fewer, plainer elements, as
 * Cytoscape takes about a millisecond per element to style, measure and
 * draw, and most for compound nodes and edges. A service with a single
 * version is one box, titled with the service's name and the version's
 * under it, instead of a box holding the version's node; only services
 * with several versions are boxes around them. The edges are straight
 * lines drawn by the EdgeLayer, unlabelled until selected.
 */
function render(cy: cytoscape.Core, layer: EdgeLayer, g: Graph, hidden: Set<string>, showIdle: boolean, showUnknown: boolean): { shown: number } {
  const els: cytoscape.ElementDefinition[] = [];
  const large = isLarge(g, hidden, showUnknown);
  const byID = new Map(g.nodes.map((n) => [n.id, n]));
  // A virtual node inside the box of the first service that lists it as a version.
  const parentOf = new Map<string, string>();
  for (const n of g.nodes) {
    if (n.kind !== 'virtualService') continue;
    for (const v of n.versions ?? []) {
      const vid = nodeID(n.mesh ?? '', 'virtualNode', v);
      if (!parentOf.has(vid)) parentOf.set(vid, n.id);
    }
  }
  // In a large graph, the drawn node of a version merged into its
  // single-version service's node.
  const mergedInto = new Map<string, string>();
  if (large) {
    for (const n of g.nodes) {
      if (n.kind !== 'virtualService' || n.versions?.length !== 1 || !shownNode(n, hidden, showUnknown)) continue;
      const vid = nodeID(n.mesh ?? '', 'virtualNode', n.versions[0]);
      const v = byID.get(vid);
      if (v && parentOf.get(vid) === n.id && shownNode(v, hidden, showUnknown)) mergedInto.set(vid, n.id);
    }
  }
  const merged = new Map<string, string>(); // service -> its merged version
  for (const [v, s] of mergedInto) merged.set(s, v);
  const present = new Set<string>();
  for (const n of g.nodes) {
    if (!shownNode(n, hidden, showUnknown)) continue;
    present.add(n.id);
    if (mergedInto.has(n.id)) continue;
    const cls = n.kind === 'virtualGateway' ? 'gateway' : n.kind === 'virtualService' ? 'service' : n.kind === 'unknown' ? 'unknown' : 'node';
    const version = merged.get(n.id);
    if (version !== undefined) {
      const label = `${nodeLabel(n)}\n${nodeLabel(byID.get(version)!)}`;
      els.push({
        group: 'nodes',
        data: { id: n.id, label, kind: n.kind, name: n.name, mesh: n.mesh, members: [n.id, version], w: labelWidth(label) },
        classes: 'service merged',
      });
      continue;
    }
    const parent = parentOf.get(n.id);
    const isVersion = parent !== undefined && !hidden.has(parent);
    const label = nodeLabel(n);
    els.push({
      group: 'nodes',
      data: { id: n.id, label, kind: n.kind, name: n.name, mesh: n.mesh, parent: isVersion ? parent : undefined, w: labelWidth(label) },
      classes: isVersion ? `${cls} version` : cls,
    });
  }
  const layerEdges: LayerEdge[] = [];
  for (const e of g.edges) {
    if (!present.has(e.source) || !present.has(e.target)) continue;
    if (e.idle && !showIdle) continue;
    if (e.unknownSource && !showUnknown) continue;
    const health = e.idle ? 'idle' : e.health ?? 'healthy';
    const source = mergedInto.get(e.source) ?? e.source;
    const target = mergedInto.get(e.target) ?? e.target;
    if (large) {
      layerEdges.push({ id: e.id, source, target, health, unknownSource: !!e.unknownSource, label: edgeLabel(e) });
      continue;
    }
    const cls = e.unknownSource ? `${health} unknown-source` : health;
    els.push({ group: 'edges', data: { id: e.id, source, target, label: edgeLabel(e), edge: e }, classes: cls });
  }
  const shown = present.size;

  const before = new Set(cy.elements().map((x) => x.id()));
  const want = new Set(els.map((x) => x.data.id as string));
  const structural = els.some((x) => !before.has(x.data.id as string)) || [...before].some((id) => !want.has(id)) ||
    els.some((x) => x.group === 'nodes' && cy.getElementById(x.data.id as string).data('parent') !== x.data.parent);
  if (!structural) {
    cy.batch(() => {
      for (const x of els) {
        const el = cy.getElementById(x.data.id as string);
        el.data(x.data);
        el.classes(x.classes as string);
      }
    });
    layer.setEdges(layerEdges);
    return { shown };
  }
  cy.nodes().forEach((n) => {
    positions.set(n.id(), { ...n.position() });
  });
  // Nodes are added at their places: known ones where they were, new ones
  // of a large graph placed in tiers first (placing them after adding
  // would make Cytoscape recompute every moved node's edges).
  const nodeDefs = els.filter((x) => x.group === 'nodes');
  const parents = new Set(nodeDefs.map((x) => x.data.parent).filter((p) => p !== undefined));
  const leaves = nodeDefs.filter((x) => !parents.has(x.data.id));
  const fresh = leaves.filter((x) => !positions.has(x.data.id as string));
  // A large graph: fcose on hundreds of nodes takes seconds on the main
  // thread, so new nodes go into the tiered grid below what is drawn.
  if (large && fresh.length > 0) tierLayout(leaves, fresh, nodeDefs.length);
  for (const x of leaves) {
    const p = positions.get(x.data.id as string);
    if (p) x.position = { ...p };
  }
  cy.batch(() => {
    cy.elements().remove();
    cy.add(els);
  });
  layer.setEdges(layerEdges);
  const childless = cy.nodes().filter((n) => n.isChildless());
  if (large) {
    fitPositions(cy, childless);
    return { shown };
  }
  if (fresh.length === 0) {
    cy.fit(undefined, 30);
    return { shown };
  }
  const fixed = childless.filter((n) => positions.has(n.id())).map((n) => ({ nodeId: n.id(), position: { ...positions.get(n.id())! } }));
  cy.layout({
    name: 'fcose',
    animate: false,
    randomize: fixed.length === 0,
    quality: 'default',
    nodeRepulsion: () => 9000,
    idealEdgeLength: () => 140,
    nestingFactor: 0.6,
    fixedNodeConstraint: fixed.length ? fixed : undefined,
    fit: true,
    padding: 30,
  } as cytoscape.LayoutOptions).run();
  childless.forEach((n) => {
    positions.set(n.id(), { ...n.position() });
  });
  return { shown };
}

/**
 * forceLayoutLimit is the most drawn nodes (not counting service boxes)
 * that are laid out by force (fcose) and have labelled, curved edges;
 * larger graphs get tierLayout, and plain straight edges.
 */
const forceLayoutLimit = 120;

/**
 * fitPositions zooms and pans so that the nodes fit the canvas, from their
 * positions alone: cy.fit measures every element's bounding box, labels and
 * edge curves included, which takes most of a second for a thousand edges.
 */
function fitPositions(cy: cytoscape.Core, nodes: cytoscape.NodeCollection): void {
  if (nodes.length === 0) return;
  let x1 = Infinity;
  let y1 = Infinity;
  let x2 = -Infinity;
  let y2 = -Infinity;
  nodes.forEach((n) => {
    const p = n.position();
    x1 = Math.min(x1, p.x);
    y1 = Math.min(y1, p.y);
    x2 = Math.max(x2, p.x);
    y2 = Math.max(y2, p.y);
  });
  // Room for the node shapes, the service boxes and their labels.
  const margin = 70;
  x1 -= margin;
  y1 -= margin;
  x2 += margin;
  y2 += margin;
  const pad = 30;
  const zoom = Math.min(cy.maxZoom(), Math.max(cy.minZoom(),
    Math.min((cy.width() - 2 * pad) / (x2 - x1), (cy.height() - 2 * pad) / (y2 - y1))));
  cy.viewport({
    zoom,
    pan: { x: (cy.width() - zoom * (x1 + x2)) / 2, y: (cy.height() - zoom * (y1 + y2)) / 2 },
  });
}

/** The row of the tiered layout a node goes in: gateways, then services, then the rest. */
function tierOf(n: cytoscape.ElementDefinition): number {
  const cls = ` ${n.classes} `;
  if (cls.includes(' gateway ')) return 0;
  if (n.data.parent !== undefined || cls.includes(' service ')) return 1;
  if (cls.includes(' unknown ')) return 3;
  return 2;
}

/**
 * tierLayout places the nodes in fresh (of leaves, the childless nodes
 * about to be drawn, count nodes in all), in O(n), in bands below the
 * nodes already placed: gateways, then services (the versions of a service side by
 * side in its box), then virtual nodes outside any service, then unknown
 * callers, each band wrapped into rows of about the square root of the
 * graph's size, in columns as wide as the widest new node. Positions
 * depend only on the order of the nodes, so the same graph is drawn the
 * same way every time.
 */
function tierLayout(leaves: cytoscape.ElementDefinition[], fresh: cytoscape.ElementDefinition[], count: number): void {
  let dx = 110;
  for (const n of fresh) if ((n.classes as string).includes('merged')) dx = Math.max(dx, Number(n.data.w) + 24);
  const dy = 110;
  const perRow = Math.max(4, Math.ceil(Math.sqrt(count) * 1.5));
  let top = 0;
  for (const n of leaves) {
    const p = positions.get(n.data.id as string);
    if (p) top = Math.max(top, p.y + dy);
  }
  // Blocks of nodes drawn side by side: one per service box, one per other node.
  const tiers: cytoscape.ElementDefinition[][][] = [[], [], [], []];
  const blockOf = new Map<string, cytoscape.ElementDefinition[]>();
  for (const n of fresh) {
    const t = tierOf(n);
    const parent = n.data.parent as string | undefined;
    if (parent !== undefined) {
      const b = blockOf.get(parent);
      if (b) {
        b.push(n);
        continue;
      }
      const nb = [n];
      blockOf.set(parent, nb);
      tiers[t].push(nb);
      continue;
    }
    tiers[t].push([n]);
  }
  for (const tier of tiers) {
    if (tier.length === 0) continue;
    let col = 0;
    for (const block of tier) {
      if (col > 0 && col + block.length > perRow) {
        col = 0;
        top += dy;
      }
      for (const n of block) {
        positions.set(n.data.id as string, { x: col * dx, y: top });
        col++;
      }
      col += 0.4; // a gap between service boxes
    }
    top += dy * 1.3;
  }
}

/** The graph as tables: every node and edge with its numbers, for reading and for tests. */
function renderTables(root: HTMLElement, g: Graph, mesh: string): void {
  const rates = nodeRates(g);
  const byID = new Map(g.nodes.map((n) => [n.id, n]));
  const nodeRows = g.nodes.map((n) => {
    const r = rates.get(n.id) ?? { in: 0, out: 0 };
    const mk = n.kind === 'virtualService' ? 'service' : n.kind === 'unknown' ? '' : 'node';
    return h(
      'tr',
      { 'data-node-id': n.id, 'data-kind': n.kind, 'data-in': r.in, 'data-out': r.out },
      h('td', {}, mk ? h('a', { href: link(['metrics', mk, n.mesh ?? mesh, n.name]) }, n.name) : n.name),
      h('td', {}, kindName(n.kind)),
      h('td', { class: 'num' }, g.configOnly ? '–' : fmtRate(r.in)),
      h('td', { class: 'num' }, g.configOnly ? '–' : fmtRate(r.out)),
      h('td', {}, (n.versions ?? []).join(', ')),
      h('td', {}, (n.badges ?? []).map((b) => `${badgeIcon[b] ?? '•'} ${b}`).join('  ')),
    );
  });
  const edgeRows = g.edges.map((e) => {
    const src = byID.get(e.source);
    const dst = byID.get(e.target);
    return h(
      'tr',
      {
        'data-edge-id': e.id,
        'data-rps': e.rps ?? '',
        'data-idle': e.idle ? 'true' : 'false',
        'data-unknown-source': e.unknownSource ? 'true' : 'false',
        class: e.idle ? 'idle' : e.health ?? '',
      },
      h('td', {}, src?.name ?? e.source),
      h('td', {}, dst?.name ?? e.target),
      h('td', { class: 'num' }, e.idle ? 'idle' : fmtRate(e.rps)),
      h('td', { class: 'num' }, fmtPct(e.errorRatio)),
      h('td', { class: 'num' }, `${fmtLatency(e.p50)} / ${fmtLatency(e.p99)}`),
      h('td', {}, ...splitCells(e)),
      h('td', {}, e.mtls === true ? '🔒 mTLS' : e.mtls === false ? 'plaintext' : '–'),
      h('td', {}, h('a', { href: link(['traces'], { service: src?.name ?? '' }) }, 'traces')),
    );
  });
  clear(root);
  root.append(
    h('h2', {}, 'Edges'),
    h('table', { class: 'data', id: 'edges' },
      h('thead', {}, h('tr', {}, ...['from', 'to', 'rate', 'errors', 'p50 / p99', 'split: observed (configured)', 'mTLS', ''].map((x) => h('th', {}, x)))),
      h('tbody', {}, ...edgeRows)),
    h('h2', {}, 'Nodes'),
    h('table', { class: 'data', id: 'nodes' },
      h('thead', {}, h('tr', {}, ...['name', 'kind', 'in', 'out', 'versions', 'policies'].map((x) => h('th', {}, x)))),
      h('tbody', {}, ...nodeRows)),
  );
}

function splitCells(e: GraphEdge): HTMLElement[] {
  return (e.split ?? []).map((s) =>
    h('span', {
      class: 'split',
      'data-split-vn': s.virtualNode,
      'data-observed': s.observedShare ?? '',
      'data-configured': s.configuredShare ?? '',
    }, `${s.virtualNode} ${s.observedShare === undefined ? '–' : fmtPct(s.observedShare, 0)} (${s.configuredShare === undefined || s.configuredShare === null ? '–' : fmtPct(s.configuredShare, 0)})`),
  );
}

function kindName(k: string): string {
  return { virtualNode: 'virtual node', virtualGateway: 'gateway', virtualService: 'virtual service', unknown: 'unknown caller' }[k] ?? k;
}

/** showNode shows the details of the graph nodes ids (a service and its version when drawn as one). */
function showNode(side: HTMLElement, mesh: string, g: Graph | undefined, ids: string[]): void {
  clear(side);
  for (const id of ids) {
    const n = g?.nodes.find((x) => x.id === id);
    if (n) nodeDetails(side, mesh, n);
  }
}

function nodeDetails(side: HTMLElement, mesh: string, n: GraphNode): void {
  const m = n.mesh ?? mesh;
  const links: HTMLElement[] = [];
  if (n.kind === 'virtualNode') links.push(h('a', { href: link(['metrics', 'node', m, n.name]) }, 'golden metrics'));
  if (n.kind === 'virtualService') links.push(h('a', { href: link(['metrics', 'service', m, n.name]) }, 'golden metrics'));
  const cfgKind = { virtualNode: 'VirtualNode', virtualGateway: 'VirtualGateway', virtualService: 'VirtualService' }[n.kind as string];
  if (cfgKind) links.push(h('a', { href: link(['config', m, cfgKind, n.name]) }, 'config'));
  links.push(h('a', { href: link(['traces'], { service: n.name }) }, 'traces'));
  const items: (Node | null)[] = [
    h('h3', {}, n.name),
    h('p', { class: 'muted' }, kindName(n.kind)),
    n.versions?.length ? h('p', {}, `versions: ${n.versions.join(', ')}`) : null,
    ...(n.routes ?? []).map((r) => h('p', {}, `route ${r.name}: `, r.targets.map((t) => `${t.virtualNode} ${t.weight}`).join(', '))),
    n.badges?.length ? h('p', {}, ...n.badges.map((b) => h('span', { class: 'badge' }, `${badgeIcon[b] ?? '•'} ${b}`))) : null,
    h('p', { class: 'links' }, ...links.flatMap((l) => [l, ' '])),
  ];
  side.append(...items.filter((x): x is Node => x !== null));
}

function showEdge(side: HTMLElement, mesh: string, g: Graph | undefined, e: GraphEdge): void {
  clear(side);
  if (!e) return;
  const src = g?.nodes.find((x) => x.id === e.source);
  const dst = g?.nodes.find((x) => x.id === e.target);
  const links: HTMLElement[] = [];
  if (src && dst && src.kind !== 'unknown') {
    links.push(h('a', { href: link(['metrics', 'edge', src.mesh ?? mesh, dst.name], { source: src.name }) }, 'golden metrics'));
  }
  links.push(h('a', { href: link(['traces'], { service: src?.name ?? '', minDuration: '' }) }, 'traces'));
  const items: (Node | null)[] = [
    h('h3', {}, `${src?.name ?? e.source} → ${dst?.name ?? e.target}`),
    h('p', {}, e.idle ? 'idle: configured, no traffic in the window' : `${fmtRate(e.rps)}, ${fmtPct(e.errorRatio)} errors`),
    h('p', {}, `p50 ${fmtLatency(e.p50)}, p99 ${fmtLatency(e.p99)}`),
    e.unknownSource ? h('p', {}, 'caller outside the mesh') : null,
    e.mtls !== undefined && e.mtls !== null ? h('p', {}, e.mtls ? '🔒 mutual TLS on the connection' : 'plaintext') : null,
    ...(e.split ?? []).map((s) => h('p', {}, `${s.virtualNode}: observed ${s.observedShare === undefined ? '–' : fmtPct(s.observedShare, 0)}, configured ${fmtPct(s.configuredShare, 0)}`)),
    h('p', { class: 'links' }, ...links.flatMap((l) => [l, ' '])),
  ];
  side.append(...items.filter((x): x is Node => x !== null));
}
