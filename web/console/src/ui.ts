// Small DOM helpers: elements are built with textContent only (never
// innerHTML), so nothing from the API is ever parsed as markup.

type Child = Node | string | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number | boolean | undefined> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

export function clear(el: Element): void {
  while (el.firstChild) el.firstChild.remove();
}

/** A notice box: kind "na" for an API this control plane lacks, "error" for a failure, "empty" for no data. */
export function notice(kind: 'na' | 'error' | 'empty' | 'info', text: string): HTMLElement {
  return h('div', { class: `notice notice-${kind}`, 'data-state': kind }, text);
}

export function fmtRate(v: number | null | undefined): string {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  if (v === 0) return '0 rps';
  if (v < 0.1) return `${v.toFixed(3)} rps`;
  if (v < 10) return `${v.toFixed(2)} rps`;
  return `${v.toFixed(0)} rps`;
}

export function fmtPct(v: number | null | undefined, digits = 1): string {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  return `${(v * 100).toFixed(digits)}%`;
}

/** A latency in seconds, as ms or s. */
export function fmtLatency(sec: number | null | undefined): string {
  if (sec === null || sec === undefined || Number.isNaN(sec)) return '–';
  const ms = sec * 1000;
  if (ms < 1) return `${ms.toFixed(2)}ms`;
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 1 : 0)}ms`;
  return `${(ms / 1000).toFixed(2)}s`;
}

/** Microseconds (Jaeger's unit) as a readable duration. */
export function fmtMicros(us: number): string {
  return fmtLatency(us / 1e6);
}

/** The health of an error ratio: the graph's colours. */
export function health(errorRatio: number | null | undefined, rps: number | null | undefined): 'healthy' | 'degraded' | 'failing' | 'idle' {
  if (!rps) return 'idle';
  const e = errorRatio ?? 0;
  if (e >= 0.2) return 'failing';
  if (e >= 0.01) return 'degraded';
  return 'healthy';
}

export function describeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The hash route's parts: #/metrics/node/demo/greeter -> ["metrics","node","demo","greeter"]. */
export function routeParts(): string[] {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path] = raw.split('?');
  return path.split('/').filter(Boolean).map(decodeURIComponent);
}

export function routeQuery(): URLSearchParams {
  const raw = location.hash.replace(/^#\/?/, '');
  const i = raw.indexOf('?');
  return new URLSearchParams(i >= 0 ? raw.slice(i + 1) : '');
}

export function link(parts: string[], query?: Record<string, string>): string {
  const q = query ? `?${new URLSearchParams(query).toString()}` : '';
  return `#/${parts.map(encodeURIComponent).join('/')}${q}`;
}
