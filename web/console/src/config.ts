// The config pages: every resource of a mesh as YAML with its warnings,
// referrers and instances; and a spec pasted in, checked by the control
// plane without writing it, with the field paths of what is wrong and a
// diff of what would change.

import YAML from 'yaml';
import { APIError, NotAvailable, Resource, get, kinds, meshResources, post, resourcePath } from './api';
import { clear, describeError, h, link, notice } from './ui';

export async function configIndex(root: HTMLElement, mesh: string): Promise<void> {
  clear(root);
  const list = h('div', { class: 'config-list' });
  root.append(h('h1', {}, `Config · ${mesh}`), validator(mesh), h('h2', {}, 'Resources'), list);
  try {
    const res = await meshResources(mesh);
    for (const [kind] of kinds) {
      const items = res.get(kind) ?? [];
      if (!items.length) continue;
      list.append(h('h3', {}, kind), h('ul', { class: 'cols' }, ...items.map((r) => {
        const parent = r.virtualRouter ?? r.virtualGateway;
        return h('li', {}, h('a', { href: link(['config', mesh, kind, r.name], parent ? { parent } : undefined) }, parent ? `${parent}/${r.name}` : r.name));
      })));
    }
  } catch (err) {
    list.append(notice('error', describeError(err)));
  }
}

export async function configResource(root: HTMLElement, mesh: string, kind: string, name: string, query: URLSearchParams): Promise<void> {
  clear(root);
  const parent = query.get('parent') ?? '';
  root.append(h('h1', {}, `${kind} ${parent ? `${parent}/` : ''}${name}`), h('p', {}, h('a', { href: '#/config' }, '← all resources')));
  const ref = { kind, mesh, name, virtualRouter: kind === 'Route' ? parent : undefined, virtualGateway: kind === 'GatewayRoute' ? parent : undefined };
  try {
    const d = await get<any>(resourcePath(ref), { view: 'describe' });
    const warnings: string[] = d.warnings ?? [];
    root.append(
      h('h2', {}, 'Warnings'),
      warnings.length ? h('ul', { class: 'warnings', id: 'warnings' }, ...warnings.map((w) => h('li', {}, w))) : notice('empty', 'None: everything in the spec is translated and enforced.'),
      h('h2', {}, 'Referred to by'),
      (d.referredBy ?? []).length
        ? h('ul', {}, ...(d.referredBy as Resource[]).map((r) => h('li', {}, h('a', { href: link(['config', r.mesh ?? mesh, r.kind, r.name], r.virtualRouter || r.virtualGateway ? { parent: (r.virtualRouter || r.virtualGateway)! } : undefined) }, `${r.kind} ${r.name}`))))
        : notice('empty', 'Nothing refers to it.'),
    );
    if (kind === 'VirtualNode') {
      const inst: any[] = d.instances ?? [];
      root.append(h('h2', {}, 'Instances'), inst.length
        ? h('table', { class: 'data' }, h('thead', {}, h('tr', {}, ...['instance', 'address', 'health', 'renewed'].map((x) => h('th', {}, x)))),
          h('tbody', {}, ...inst.map((i) => h('tr', {}, h('td', {}, i.id ?? ''), h('td', {}, `${i.address}:${i.port}`), h('td', {}, i.healthStatus ?? ''), h('td', {}, i.renewedAt ? new Date(i.renewedAt).toLocaleTimeString() : '')))))
        : notice('empty', 'No registered instances.'));
      root.append(h('p', {}, h('a', { href: link(['metrics', 'node', mesh, name]) }, 'golden metrics')));
    }
    root.append(h('h2', {}, 'YAML'), h('pre', { class: 'yaml', id: 'resource-yaml' }, YAML.stringify(d.resource)));
  } catch (err) {
    root.append(notice('error', describeError(err)));
  }
}

/** The paste-and-check box. */
function validator(mesh: string): HTMLElement {
  const area = h('textarea', { id: 'spec', rows: 12, spellcheck: false, placeholder: `Paste resources (YAML or JSON), e.g.\nkind: Route\nmesh: ${mesh}\nname: split\nvirtualRouter: greeting\nspec: ...` });
  const btn = h('button', { type: 'submit', id: 'validate' }, 'validate (dry run)');
  const out = h('div', { id: 'validate-result' });
  const form = h('form', { class: 'validator' }, area, h('div', {}, btn), out);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(out);
    out.append(h('p', { class: 'muted' }, 'checking…'));
    const body = area.value;
    let result: HTMLElement[];
    try {
      result = await checkWithConsole(body);
    } catch (err) {
      if (err instanceof NotAvailable) result = await checkWithDryRun(body);
      else result = [failure(err)];
    }
    clear(out);
    out.append(...result);
  });
  return h('section', {}, h('h2', {}, 'Check a spec'), form);
}

function failure(err: unknown): HTMLElement {
  if (err instanceof APIError) {
    const details = err.details ?? [];
    return h('div', { class: 'notice notice-error', 'data-state': 'invalid' },
      h('p', {}, `${err.code}: ${err.message}`),
      details.length ? h('ul', { id: 'validate-errors' }, ...details.map((d) => h('li', { 'data-path': d.path }, h('code', {}, d.path), `: ${d.message}`))) : null);
  }
  return notice('error', describeError(err));
}

/** POST /v1/console/validate: validation and what changes for traffic (docs/api.md). */
async function checkWithConsole(body: string): Promise<HTMLElement[]> {
  const r = await post<any>('/v1/console/validate', body);
  const out: HTMLElement[] = [];
  if (r.valid === false) {
    const errors: { path: string; message: string }[] = r.errors ?? [];
    out.push(h('div', { class: 'notice notice-error', 'data-state': 'invalid' }, h('p', {}, r.message ?? 'The spec is not valid.'),
      errors.length ? h('ul', { id: 'validate-errors' }, ...errors.map((d) => h('li', { 'data-path': d.path ?? '' }, h('code', {}, d.path ?? ''), `: ${d.message ?? ''}`))) : null));
    return out;
  }
  out.push(h('div', { class: 'notice notice-ok', 'data-state': 'valid' }, 'Valid. Nothing was written.'));
  for (const w of r.warnings ?? []) out.push(notice('info', String(w)));
  const changes: any[] = r.changes ?? [];
  if (!changes.length) {
    out.push(notice('empty', "No proxy's routes or clusters change."));
    return out;
  }
  const weights = (l: any[] | undefined) => (l ?? []).map((w) => `${w.cluster} ${w.weight}`).join(', ') || '–';
  const rows: HTMLElement[] = [];
  for (const c of changes) {
    for (const rt of c.routes ?? []) {
      rows.push(h('tr', {}, h('td', {}, c.node), h('td', {}, `${rt.routeConfig} / ${rt.route}`), h('td', {}, rt.change), h('td', {}, weights(rt.old)), h('td', {}, weights(rt.new))));
    }
    const cl = c.clusters ?? {};
    for (const [what, list] of [['cluster added', cl.added], ['cluster removed', cl.removed], ['cluster changed', cl.changed]] as [string, string[] | undefined][]) {
      for (const name of list ?? []) rows.push(h('tr', {}, h('td', {}, c.node), h('td', {}, name), h('td', {}, what), h('td', {}), h('td', {})));
    }
  }
  out.push(h('h3', {}, 'What changes for traffic'),
    h('table', { class: 'data', id: 'validate-changes' },
      h('thead', {}, h('tr', {}, ...['proxy', 'route or cluster', 'change', 'old weights', 'new weights'].map((x) => h('th', {}, x)))),
      h('tbody', {}, ...rows)));
  return out;
}

/** POST /v1/apply?dryRun=true, and a diff of each resource against what is stored. */
async function checkWithDryRun(body: string): Promise<HTMLElement[]> {
  try {
    const r = await post<{ results: { op: string; resource: Resource }[]; warnings?: string[] }>('/v1/apply', body, { dryRun: 'true' });
    const out: HTMLElement[] = [h('div', { class: 'notice notice-ok', 'data-state': 'valid' }, 'Valid. Nothing was written.')];
    for (const w of r.warnings ?? []) out.push(notice('info', w));
    for (const res of r.results ?? []) {
      let before = '';
      try {
        const cur = await get<Resource>(resourcePath(res.resource));
        before = YAML.stringify(cur.spec);
      } catch {
        before = '';
      }
      const after = YAML.stringify(res.resource.spec);
      out.push(h('h3', {}, `${res.resource.kind} ${res.resource.name}: ${before ? (before === after ? 'unchanged' : 'changes') : 'new'}`), diffView(before, after));
    }
    return out;
  } catch (err) {
    return [failure(err)];
  }
}

/** A line diff of two texts (longest common subsequence). */
function diffView(a: string, b: string): HTMLElement {
  const x = a ? a.split('\n') : [];
  const y = b.split('\n');
  const n = x.length;
  const m = y.length;
  const l: number[][] = Array.from({ length: n + 1 }, () => new Array(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) l[i][j] = x[i] === y[j] ? l[i + 1][j + 1] + 1 : Math.max(l[i + 1][j], l[i][j + 1]);
  const lines: HTMLElement[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && x[i] === y[j]) {
      lines.push(h('div', {}, `  ${x[i]}`));
      i++;
      j++;
    } else if (j < m && (i >= n || l[i][j + 1] >= l[i + 1][j])) {
      lines.push(h('div', { class: 'add' }, `+ ${y[j++]}`));
    } else {
      lines.push(h('div', { class: 'del' }, `- ${x[i++]}`));
    }
  }
  return h('pre', { class: 'diff', id: 'validate-diff' }, ...lines);
}
