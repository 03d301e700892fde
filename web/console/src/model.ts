// The service graph as GET /v1/console/graph answers it (docs/api.md),
// and the same shape built from the resources alone when the control
// plane has no traffic metrics to offer.

import { Resource, meshResources } from './api';

export interface Target {
  virtualNode: string;
  weight: number;
  share: number;
}

export interface Route {
  name: string;
  targets: Target[];
  badges?: string[];
}

export interface GraphNode {
  id: string;
  kind: 'virtualNode' | 'virtualGateway' | 'virtualService' | 'unknown' | string;
  mesh?: string;
  name: string;
  versions?: string[];
  router?: string;
  routes?: Route[];
  badges?: string[];
}

export interface Split {
  virtualNode: string;
  rps?: number | null;
  observedShare?: number;
  configuredShare?: number | null;
}

export interface GraphEdge {
  id: string;
  source: string;
  target: string;
  rps: number | null;
  errorRatio: number | null;
  p50: number | null;
  p99: number | null;
  health?: string;
  idle?: boolean;
  unknownSource?: boolean;
  mtls?: boolean | null;
  split?: Split[];
}

export interface Graph {
  generatedAt?: string;
  window?: string;
  nodes: GraphNode[];
  edges: GraphEdge[];
  /** Set by the console: the graph came from the resources only. */
  configOnly?: boolean;
}

export function nodeID(mesh: string, kind: string, name: string): string {
  return `${mesh}/${kind}/${name}`;
}

/** The graph as the resources configure it: every configured backend an idle edge, no rates. */
export async function configGraph(mesh: string): Promise<Graph> {
  const res = await meshResources(mesh);
  const nodes = new Map<string, GraphNode>();
  const edges: GraphEdge[] = [];
  const list = (k: string): Resource[] => res.get(k) ?? [];
  const idle = (src: string, dst: string) =>
    edges.push({ id: `${src}->${dst}`, source: src, target: dst, rps: null, errorRatio: null, p50: null, p99: null, health: 'idle', idle: true });
  for (const r of list('VirtualNode')) {
    const id = nodeID(mesh, 'virtualNode', r.name);
    nodes.set(id, { id, kind: 'virtualNode', mesh, name: r.name, badges: nodeBadges(r.spec) });
    for (const b of r.spec?.backends ?? []) {
      const vs = b?.virtualService?.virtualServiceName;
      if (vs) idle(id, nodeID(mesh, 'virtualService', vs));
    }
  }
  for (const r of list('VirtualGateway')) {
    const id = nodeID(mesh, 'virtualGateway', r.name);
    nodes.set(id, { id, kind: 'virtualGateway', mesh, name: r.name });
  }
  for (const r of list('GatewayRoute')) {
    const s = r.spec ?? {};
    const route = s.httpRoute ?? s.http2Route ?? s.grpcRoute;
    const vs = route?.action?.target?.virtualService?.virtualServiceName;
    if (vs) idle(nodeID(mesh, 'virtualGateway', r.virtualGateway ?? ''), nodeID(mesh, 'virtualService', vs));
  }
  const routesOf = new Map<string, Resource[]>();
  for (const r of list('Route')) {
    const k = r.virtualRouter ?? '';
    routesOf.set(k, [...(routesOf.get(k) ?? []), r]);
  }
  for (const r of list('VirtualService')) {
    const id = nodeID(mesh, 'virtualService', r.name);
    const n: GraphNode = { id, kind: 'virtualService', mesh, name: r.name, versions: [], routes: [], badges: [] };
    const p = r.spec?.provider ?? {};
    if (p.virtualNode) n.versions = [p.virtualNode.virtualNodeName];
    if (p.virtualRouter) {
      n.router = p.virtualRouter.virtualRouterName;
      for (const rt of routesOf.get(n.router ?? '') ?? []) {
        const { targets, badges } = routeTargets(rt.spec);
        const sum = targets.reduce((a, t) => a + t.weight, 0);
        for (const t of targets) {
          t.share = sum > 0 ? t.weight / sum : 0;
          if (!n.versions!.includes(t.virtualNode)) n.versions!.push(t.virtualNode);
        }
        for (const b of badges) if (!n.badges!.includes(b)) n.badges!.push(b);
        n.routes!.push({ name: rt.name, targets, badges });
      }
    }
    nodes.set(id, n);
  }
  // Configured shares on each edge into a service.
  const g: Graph = { nodes: [...nodes.values()], edges: edges.filter((e) => nodes.has(e.source) && nodes.has(e.target)), configOnly: true };
  for (const e of g.edges) {
    const shares = configuredShares(nodes.get(e.target));
    e.split = [...shares.entries()].map(([vn, c]) => ({ virtualNode: vn, configuredShare: c }));
  }
  return g;
}

/** A service's configured share per version, summed over its routes. */
export function configuredShares(n: GraphNode | undefined): Map<string, number> {
  const out = new Map<string, number>();
  if (!n) return out;
  if (!n.router && n.versions?.length === 1) {
    out.set(n.versions[0], 1);
    return out;
  }
  let sum = 0;
  for (const r of n.routes ?? []) for (const t of r.targets) {
    out.set(t.virtualNode, (out.get(t.virtualNode) ?? 0) + t.share);
    sum += t.share;
  }
  if (sum > 0) for (const [k, v] of out) out.set(k, v / sum);
  return out;
}

function nodeBadges(spec: any): string[] {
  const b = new Set<string>();
  for (const l of spec?.listeners ?? []) {
    if (l.outlierDetection) b.add('outlierDetection');
    if (l.connectionPool) b.add('circuitBreaker');
    if (l.healthCheck) b.add('healthCheck');
    if (l.timeout) b.add('timeout');
    if (l.tls) b.add('tls');
    if (l.meshlens?.fault) b.add('fault');
    if (l.meshlens?.rateLimit) b.add('rateLimit');
  }
  return [...b];
}

function routeTargets(spec: any): { targets: Target[]; badges: string[] } {
  const badges: string[] = [];
  const r = spec?.httpRoute ?? spec?.http2Route ?? spec?.grpcRoute ?? spec?.tcpRoute;
  const targets: Target[] = (r?.action?.weightedTargets ?? []).map((t: any) => ({ virtualNode: t.virtualNode, weight: t.weight ?? 0, share: 0 }));
  if (r?.retryPolicy) badges.push('retries');
  if (r?.timeout) badges.push('timeout');
  return { targets, badges };
}

/** The requests per second into and out of each node, and through each version. */
export function nodeRates(g: Graph): Map<string, { in: number; out: number }> {
  const m = new Map<string, { in: number; out: number }>();
  const at = (id: string) => {
    let v = m.get(id);
    if (!v) m.set(id, (v = { in: 0, out: 0 }));
    return v;
  };
  const meshOf = new Map(g.nodes.map((n) => [n.id, n.mesh ?? '']));
  for (const e of g.edges) {
    const r = e.rps ?? 0;
    at(e.source).out += r;
    at(e.target).in += r;
    for (const s of e.split ?? []) {
      if (s.rps) at(nodeID(meshOf.get(e.target) ?? '', 'virtualNode', s.virtualNode)).in += s.rps;
    }
  }
  return m;
}
