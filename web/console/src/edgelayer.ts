// The edges of a large graph, drawn in one pass on a canvas of their own
// under Cytoscape's nodes. Cytoscape styles, measures and draws every edge
// as an element of its own, which for a thousand edges takes most of a
// second; here all the edges of one colour are one path, stroked once,
// redrawn whenever Cytoscape redraws (panning, zooming, dragging a node).
// Clicking an edge selects it and shows its label, as in Cytoscape.

import cytoscape from 'cytoscape';

/** An edge of the layer, between two drawn nodes. */
export interface LayerEdge {
  id: string;
  source: string;
  target: string;
  /** healthy, degraded, failing or idle: the colour. */
  health: string;
  /** From the unknown caller: dotted. */
  unknownSource: boolean;
  /** Shown when the edge is selected. */
  label: string;
}

const colours: Record<string, string> = {
  healthy: '#3f9a54',
  degraded: '#d08a00',
  failing: '#c8312b',
  idle: '#b8c0c8',
};

// The same sizes as the Cytoscape style of smaller graphs' edges, in
// model units: line width, and the triangle arrow's length and half width.
const lineWidth = 2;
const failingWidth = 3;
const selectedWidth = 4;
const arrowLength = 8.7;
const arrowHalf = 4.35;

/** A drawn node's place and outline. */
interface Shape {
  x: number;
  y: number;
  hw: number; // half width
  hh: number; // half height
  kind: 'box' | 'diamond' | 'round';
}

export class EdgeLayer {
  private edges: LayerEdge[] = [];
  private selectedID: string | undefined;
  private readonly canvas: HTMLCanvasElement;
  private readonly ctx: CanvasRenderingContext2D;
  private readonly onRender = () => this.draw();
  private dirty = false; // a draw is asked for on the next frame
  private destroyed = false;

  /** The layer draws under cy's canvases, inside container (cy's container, positioned). */
  constructor(
    private readonly cy: cytoscape.Core,
    container: HTMLElement,
  ) {
    this.canvas = document.createElement('canvas');
    this.canvas.className = 'edge-layer';
    this.canvas.style.position = 'absolute';
    this.canvas.style.left = '0';
    this.canvas.style.top = '0';
    this.canvas.style.zIndex = '0';
    this.canvas.style.pointerEvents = 'none';
    container.insertBefore(this.canvas, container.firstChild);
    this.ctx = this.canvas.getContext('2d')!;
    cy.on('render', this.onRender);
  }

  /** setEdges replaces the edges drawn, from the next frame on. */
  setEdges(edges: LayerEdge[]): void {
    this.edges = edges;
    if (this.selectedID !== undefined && !edges.some((e) => e.id === this.selectedID)) this.selectedID = undefined;
    this.redraw();
  }

  list(): LayerEdge[] {
    return this.edges;
  }

  /** select marks the edge id (or none) as selected: wider, with its label. */
  select(id: string | undefined): void {
    if (id === this.selectedID) return;
    this.selectedID = id;
    this.redraw();
  }

  /**
   * hit is the edge nearest to the model position p, within a few pixels
   * on the screen, if any: the line between the centres of its nodes (its
   * ends are under the nodes, which take clicks first).
   */
  hit(p: cytoscape.Position): LayerEdge | undefined {
    const shapes = this.shapes();
    const tol = 6 / this.cy.zoom();
    let best: LayerEdge | undefined;
    let bestD = tol;
    for (const e of this.edges) {
      const s = shapes.get(e.source);
      const t = shapes.get(e.target);
      if (!s || !t) continue;
      const d = e.source === e.target ? Math.abs(Math.hypot(p.x - loopCentre(s).x, p.y - loopCentre(s).y) - loopRadius(s)) : segmentDistance(p, s, t);
      if (d <= bestD) {
        best = e;
        bestD = d;
      }
    }
    return best;
  }

  destroy(): void {
    this.destroyed = true;
    this.cy.off('render', this.onRender);
    this.canvas.remove();
  }

  /**
   * redraw draws on the next frame, unless Cytoscape draws that frame
   * first (its render event draws the layer too).
   */
  private redraw(): void {
    if (this.dirty) return;
    this.dirty = true;
    requestAnimationFrame(() => {
      if (this.dirty && !this.destroyed) this.draw();
    });
  }

  private shapes(): Map<string, Shape> {
    const out = new Map<string, Shape>();
    this.cy.nodes().forEach((n) => {
      const p = n.position();
      const kind = n.hasClass('gateway') ? 'diamond' : n.hasClass('service') || n.hasClass('version') ? 'box' : 'round';
      out.set(n.id(), { x: p.x, y: p.y, hw: n.outerWidth() / 2, hh: n.outerHeight() / 2, kind });
    });
    return out;
  }

  /** draw paints every edge, in Cytoscape's current viewport. */
  private draw(): void {
    this.dirty = false;
    const cy = this.cy;
    const ratio = window.devicePixelRatio || 1;
    const w = cy.width();
    const h = cy.height();
    if (this.canvas.width !== Math.round(w * ratio) || this.canvas.height !== Math.round(h * ratio)) {
      this.canvas.width = Math.round(w * ratio);
      this.canvas.height = Math.round(h * ratio);
      this.canvas.style.width = `${w}px`;
      this.canvas.style.height = `${h}px`;
    }
    const ctx = this.ctx;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    if (this.edges.length === 0) return;
    const zoom = cy.zoom();
    const pan = cy.pan();
    ctx.setTransform(ratio * zoom, 0, 0, ratio * zoom, ratio * pan.x, ratio * pan.y);
    const shapes = this.shapes();
    // One path of lines and one of arrows per look (colour, width, dashes).
    const groups = new Map<string, { colour: string; width: number; dash: number[]; lines: Path2D; arrows: Path2D }>();
    let selected: { e: LayerEdge; s: Shape; t: Shape } | undefined;
    for (const e of this.edges) {
      const s = shapes.get(e.source);
      const t = shapes.get(e.target);
      if (!s || !t) continue;
      if (e.id === this.selectedID) selected = { e, s, t };
      const width = e.id === this.selectedID ? selectedWidth : e.health === 'failing' ? failingWidth : lineWidth;
      const dash = e.unknownSource ? [1, 4] : e.health === 'idle' ? [6, 3] : [];
      const key = `${e.health}|${width}|${dash.join(',')}`;
      let g = groups.get(key);
      if (!g) {
        g = { colour: colours[e.health] ?? colours.healthy, width, dash, lines: new Path2D(), arrows: new Path2D() };
        groups.set(key, g);
      }
      if (e.source === e.target) {
        addLoop(g.lines, g.arrows, s);
        continue;
      }
      addEdge(g.lines, g.arrows, s, t);
    }
    for (const g of groups.values()) {
      ctx.strokeStyle = g.colour;
      ctx.fillStyle = g.colour;
      ctx.lineWidth = g.width;
      ctx.setLineDash(g.dash);
      ctx.stroke(g.lines);
      ctx.fill(g.arrows);
    }
    ctx.setLineDash([]);
    if (selected) this.drawLabel(selected.e, selected.s, selected.t, zoom, pan, ratio);
  }

  /** drawLabel writes the selected edge's label at its middle, at a size readable at any zoom. */
  private drawLabel(e: LayerEdge, s: Shape, t: Shape, zoom: number, pan: cytoscape.Position, ratio: number): void {
    const ctx = this.ctx;
    const mx = e.source === e.target ? loopCentre(s).x : (s.x + t.x) / 2;
    const my = e.source === e.target ? loopCentre(s).y - loopRadius(s) : (s.y + t.y) / 2;
    const x = mx * zoom + pan.x;
    const y = my * zoom + pan.y;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.font = '11px "Helvetica Neue", Helvetica, sans-serif';
    ctx.textAlign = 'center';
    ctx.textBaseline = 'middle';
    const lines = e.label.split('\n');
    const lh = 13;
    const width = Math.max(...lines.map((l) => ctx.measureText(l).width)) + 6;
    const height = lines.length * lh + 4;
    ctx.globalAlpha = 0.85;
    ctx.fillStyle = '#ffffff';
    ctx.fillRect(x - width / 2, y - height / 2, width, height);
    ctx.globalAlpha = 1;
    ctx.fillStyle = '#1d2733';
    lines.forEach((l, i) => ctx.fillText(l, x, y - height / 2 + 2 + lh / 2 + i * lh));
  }
}

/** addEdge adds the line from s to t's outline, and the arrow there. */
function addEdge(lines: Path2D, arrows: Path2D, s: Shape, t: Shape): void {
  const dx = t.x - s.x;
  const dy = t.y - s.y;
  const len = Math.hypot(dx, dy);
  if (len === 0) return;
  const ux = dx / len;
  const uy = dy / len;
  const into = Math.min(outline(t, ux, uy), len);
  const tipX = t.x - ux * into;
  const tipY = t.y - uy * into;
  const baseX = tipX - ux * arrowLength;
  const baseY = tipY - uy * arrowLength;
  lines.moveTo(s.x, s.y);
  lines.lineTo(baseX, baseY);
  arrows.moveTo(tipX, tipY);
  arrows.lineTo(baseX - uy * arrowHalf, baseY + ux * arrowHalf);
  arrows.lineTo(baseX + uy * arrowHalf, baseY - ux * arrowHalf);
  arrows.closePath();
}

/** outline is the distance from the centre of sh to its outline in the direction (ux, uy). */
function outline(sh: Shape, ux: number, uy: number): number {
  const ax = Math.abs(ux);
  const ay = Math.abs(uy);
  switch (sh.kind) {
    case 'box':
      return Math.min(ax > 0 ? sh.hw / ax : Infinity, ay > 0 ? sh.hh / ay : Infinity);
    case 'diamond':
      return 1 / (ax / sh.hw + ay / sh.hh);
    default:
      return 1 / Math.hypot(ux / sh.hw, uy / sh.hh);
  }
}

// A node calling itself: a small circle on its top right corner.
function loopRadius(s: Shape): number {
  return Math.max(8, Math.min(s.hw, s.hh) * 0.6);
}

function loopCentre(s: Shape): { x: number; y: number } {
  return { x: s.x + s.hw * 0.8, y: s.y - s.hh };
}

function addLoop(lines: Path2D, arrows: Path2D, s: Shape): void {
  const c = loopCentre(s);
  const r = loopRadius(s);
  lines.moveTo(c.x + r, c.y);
  lines.arc(c.x, c.y, r, 0, Math.PI * 2);
  // On its right, pointing down, the way round it goes.
  const x = c.x + r;
  arrows.moveTo(x, c.y + arrowLength / 2);
  arrows.lineTo(x - arrowHalf, c.y - arrowLength / 2);
  arrows.lineTo(x + arrowHalf, c.y - arrowLength / 2);
  arrows.closePath();
}

/** segmentDistance is the distance from p to the segment from a to b. */
function segmentDistance(p: cytoscape.Position, a: { x: number; y: number }, b: { x: number; y: number }): number {
  const dx = b.x - a.x;
  const dy = b.y - a.y;
  const l2 = dx * dx + dy * dy;
  const t = l2 === 0 ? 0 : Math.max(0, Math.min(1, ((p.x - a.x) * dx + (p.y - a.y) * dy) / l2));
  return Math.hypot(p.x - (a.x + t * dx), p.y - (a.y + t * dy));
}
