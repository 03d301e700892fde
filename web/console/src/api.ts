// The console's view of the control plane's JSON API (docs/api.md).
// Every call is same-origin; an endpoint the control plane does not have
// (404 with "no API endpoint") becomes NotAvailable, which pages show as
// a plain "not available" state instead of failing. Calls carry the
// signed-in token (auth.ts); a 401 shows the sign-in form.

import { authFetch } from './auth';

/** An endpoint this control plane does not serve. */
export class NotAvailable extends Error {
  constructor(public path: string) {
    super(`${path} is not available on this control plane`);
  }
}

/** An error answer of the API, with App Mesh's code and field details. */
export class APIError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
    public details: FieldError[] = [],
  ) {
    super(message);
  }
}

export interface FieldError {
  path: string;
  message: string;
}

async function decode(path: string, resp: Response): Promise<any> {
  const text = await resp.text();
  let body: any = undefined;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  if (resp.ok) return body;
  const msg: string = body?.message ?? `${resp.status} ${resp.statusText}`;
  if (resp.status === 404 && /no API endpoint/.test(msg)) throw new NotAvailable(path);
  if (resp.status === 401) throw new APIError(401, body?.code ?? '401', `sign in with a token to see this (${msg})`);
  if (resp.status === 403) throw new APIError(403, body?.code ?? '403', `your token may not do this: ${msg}`);
  throw new APIError(resp.status, body?.code ?? String(resp.status), msg, body?.details ?? []);
}

/** GET path and decode its JSON answer. */
export async function get<T = any>(path: string, params?: Record<string, string | undefined>): Promise<T> {
  const url = withParams(path, params);
  const resp = await authFetch(url, { headers: { Accept: 'application/json' } });
  return decode(url, resp);
}

/** POST a text body (YAML or JSON) and decode the JSON answer. */
export async function post<T = any>(path: string, body: string, params?: Record<string, string | undefined>): Promise<T> {
  const url = withParams(path, params);
  const resp = await authFetch(url, {
    method: 'POST',
    headers: { Accept: 'application/json', 'Content-Type': 'application/yaml' },
    body,
  });
  return decode(url, resp);
}

export function withParams(path: string, params?: Record<string, string | undefined>): string {
  if (!params) return path;
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

/**
 * Reads the server-sent events of path with fetch (so that they carry the
 * token, which EventSource cannot send), calling onEvent with each event's
 * name and data, until signal aborts or the stream ends; a failed answer
 * throws APIError.
 */
export async function streamEvents(path: string, signal: AbortSignal, onEvent: (name: string, data: string) => void): Promise<void> {
  const resp = await authFetch(path, { signal, headers: { Accept: 'text/event-stream' } });
  if (!resp.ok || !resp.body) {
    await decode(path, resp);
    throw new APIError(resp.status, String(resp.status), `${path}: no event stream`);
  }
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  let name = 'message';
  let data: string[] = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i).replace(/\r$/, '');
      buf = buf.slice(i + 1);
      if (line === '') {
        if (data.length) onEvent(name, data.join('\n'));
        name = 'message';
        data = [];
      } else if (line.startsWith('event:')) name = line.slice(6).trim();
      else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
    }
    if (buf.length > 64 << 20) throw new Error(`${path}: an event longer than 64 MiB`);
  }
}

/** A mesh resource as the API returns it. */
export interface Resource {
  kind: string;
  mesh?: string;
  name: string;
  virtualRouter?: string;
  virtualGateway?: string;
  metadata?: Record<string, unknown>;
  status?: Record<string, unknown>;
  spec: any;
}

/** The API's plural path segment of each kind, in the order pages list them. */
export const kinds: [kind: string, plural: string][] = [
  ['VirtualGateway', 'virtualGateways'],
  ['GatewayRoute', 'gatewayRoutes'],
  ['VirtualService', 'virtualServices'],
  ['VirtualRouter', 'virtualRouters'],
  ['Route', 'routes'],
  ['VirtualNode', 'virtualNodes'],
];

export function pluralOf(kind: string): string {
  return kinds.find(([k]) => k === kind)?.[1] ?? kind;
}

/** The API path of one resource. */
export function resourcePath(r: { kind: string; mesh?: string; name: string; virtualRouter?: string; virtualGateway?: string }): string {
  const e = encodeURIComponent;
  if (r.kind === 'Mesh') return `/v1/meshes/${e(r.name)}`;
  const m = `/v1/meshes/${e(r.mesh ?? '')}`;
  if (r.kind === 'Route') return `${m}/virtualRouters/${e(r.virtualRouter ?? '')}/routes/${e(r.name)}`;
  if (r.kind === 'GatewayRoute') return `${m}/virtualGateways/${e(r.virtualGateway ?? '')}/gatewayRoutes/${e(r.name)}`;
  return `${m}/${pluralOf(r.kind)}/${e(r.name)}`;
}

/** Every resource of a mesh, by kind. */
export async function meshResources(mesh: string): Promise<Map<string, Resource[]>> {
  const out = new Map<string, Resource[]>();
  await Promise.all(
    kinds.map(async ([kind, plural]) => {
      const l = await get<{ items: Resource[] }>(`/v1/meshes/${encodeURIComponent(mesh)}/${plural}`);
      out.set(kind, l.items ?? []);
    }),
  );
  return out;
}
