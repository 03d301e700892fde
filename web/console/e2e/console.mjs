// Drives Debian's chromium (headless, through playwright-core) against a
// running `meshlens demo` and checks the console page by page. Fails on
// any browser console error, page error, failed request or unexpected
// HTTP error answer. Run by test/e2e/console_test.go.
//
// Environment:
//   MESHLENS_CONSOLE_URL  the control plane's API URL (http://127.0.0.1:7070)
//   MESHLENS_BIN          the meshlens binary, for the README's weight change
//   MESHLENS_SCREENSHOTS  directory for the screenshots (optional)
//   CHROMIUM              the browser (default /usr/bin/chromium)
//   MESHLENS_CONSOLE_BACKEND  where the control plane reads traffic from
//                         (built-in history or a Prometheus URL), for the report

import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const api = process.env.MESHLENS_CONSOLE_URL;
const bin = process.env.MESHLENS_BIN;
const shots = process.env.MESHLENS_SCREENSHOTS ?? '';
if (!api || !bin) {
  console.error('MESHLENS_CONSOLE_URL and MESHLENS_BIN are required');
  process.exit(2);
}

console.log(`console against ${api}, traffic from ${process.env.MESHLENS_CONSOLE_BACKEND || 'built-in history'}`);

let passed = 0;
let failed = 0;
const notes = [];
async function check(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok   ${name} (${Date.now() - t0}ms)`);
  } catch (err) {
    failed++;
    console.log(`FAIL ${name}: ${err?.stack ?? err}`);
  }
}
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

// Which console endpoints this control plane serves: the page shows a
// "not available" state for the others, and their 404s are expected.
const absent = new Set();
for (const p of ['/v1/console/graph', '/v1/console/metrics?kind=node&mesh=demo&name=greeter', '/v1/console/top', '/v1/console/instances?mesh=demo&node=greeter', '/api/services']) {
  const r = await fetch(api + p);
  const body = await r.text();
  if (r.status === 404 && body.includes('no API endpoint')) absent.add(p.split('?')[0]);
}
const validateProbe = await fetch(api + '/v1/console/validate', { method: 'POST', body: '' });
if (validateProbe.status === 404 && (await validateProbe.text()).includes('no API endpoint')) absent.add('/v1/console/validate');
// Endpoints docs/api.md documents must be served: their absence fails
// the run instead of showing the "not available" state.
const required = (process.env.MESHLENS_CONSOLE_REQUIRED ?? '').split(',').filter(Boolean);
const missingRequired = required.filter((p) => absent.has(p));
for (const p of absent) notes.push(`not served by this control plane: ${p} (the console shows its "not available" state)`);
const withMetrics = !absent.has('/v1/console/graph');

const userData = mkdtempSync(join(tmpdir(), 'meshlens-chromium-'));
const context = await chromium.launchPersistentContext(userData, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
  viewport: { width: 1400, height: 900 },
});
const page = context.pages()[0] ?? (await context.newPage());
page.setDefaultTimeout(20000);

const problems = [];
const expectedStatus = []; // [urlPart, status] answers a check provokes on purpose
page.on('console', (msg) => {
  if (msg.type() !== 'error') return;
  // Chromium logs every HTTP error answer as a console error; those are
  // judged below, by the response itself.
  if (msg.text().startsWith('Failed to load resource: the server responded with a status of')) return;
  problems.push(`console error: ${msg.text()}`);
});
page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
page.on('requestfailed', (req) => {
  const f = req.failure()?.errorText ?? '';
  // An EventSource or a fetch cut short by leaving the page is not a failure.
  if (f === 'net::ERR_ABORTED') return;
  problems.push(`request failed: ${req.method()} ${req.url()}: ${f}`);
});
page.on('response', (resp) => {
  if (resp.status() < 400) return;
  const path = new URL(resp.url()).pathname;
  if (resp.status() === 404 && absent.has(path)) return;
  if (expectedStatus.some(([part, st]) => resp.url().includes(part) && resp.status() === st)) return;
  problems.push(`HTTP ${resp.status()}: ${resp.request().method()} ${resp.url()}`);
});

async function shot(name) {
  if (!shots) return;
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: join(shots, name), fullPage: false });
}

const demoNodes = ['demo/virtualGateway/ingress', 'demo/virtualNode/greeter', 'demo/virtualNode/greeting-v1', 'demo/virtualNode/greeting-v2',
  'demo/virtualNode/name', 'demo/virtualService/greeter.demo.local', 'demo/virtualService/greeting.demo.local', 'demo/virtualService/name.demo.local'];
const demoEdges = ['demo/virtualGateway/ingress->demo/virtualService/greeter.demo.local', 'demo/virtualNode/greeter->demo/virtualService/greeting.demo.local',
  'demo/virtualNode/greeter->demo/virtualService/name.demo.local'];

async function graphState() {
  return page.evaluate(() => ({
    nodes: Object.fromEntries([...document.querySelectorAll('#nodes tr[data-node-id]')].map((r) => [r.dataset.nodeId, Number(r.dataset.in) + Number(r.dataset.out)])),
    edges: Object.fromEntries([...document.querySelectorAll('#edges tr[data-edge-id]')].map((r) => [r.dataset.edgeId, { rps: Number(r.dataset.rps || 0), idle: r.dataset.idle === 'true' }])),
    splits: Object.fromEntries([...document.querySelectorAll('#edges tr[data-edge-id]')].map((r) => [r.dataset.edgeId,
      Object.fromEntries([...r.querySelectorAll('[data-split-vn]')].map((s) => [s.dataset.splitVn, { configured: s.dataset.configured, observed: s.dataset.observed }]))])),
    notAvailable: !!document.querySelector('#graph-status [data-state="na"]'),
    canvas: !!document.querySelector('#graph canvas'),
  }));
}

async function poll(what, timeoutMs, fn) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await fn();
    if (last.ok) return last;
    if (Date.now() > end) throw new Error(`${what}: not within ${timeoutMs / 1000}s; last: ${JSON.stringify(last)}`);
    await page.waitForTimeout(500);
  }
}

await check('graph: every node and edge of the demo' + (withMetrics ? ', each with a non-zero rate' : ''), async () => {
  await page.goto(`${api}/ui/#/graph`);
  await page.waitForSelector('#edges tr[data-edge-id]');
  await poll('demo graph', 60000, async () => {
    const g = await graphState();
    const missing = [...demoNodes.filter((n) => !(n in g.nodes)), ...demoEdges.filter((e) => !(e in g.edges))];
    const zero = withMetrics ? [...demoNodes.filter((n) => !(g.nodes[n] > 0)), ...demoEdges.filter((e) => !(g.edges[e]?.rps > 0))] : [];
    return { ok: missing.length === 0 && zero.length === 0 && g.canvas && (withMetrics || g.notAvailable), missing, zero, notAvailable: g.notAvailable };
  });
  await shot('console-graph.png');
});

const drawn = async () => JSON.parse((await page.locator('#graph').getAttribute('data-nodes')) ?? '{}');

await check('graph: find and hide take nodes off the graph, show all brings them back', async () => {
  await page.fill('#graph-find', 'greeting-v');
  await page.click('#graph-hide');
  const after = await drawn();
  assert(!('demo/virtualNode/greeting-v1' in after) && !('demo/virtualNode/greeting-v2' in after) && 'demo/virtualNode/greeter' in after,
    `after hiding: ${Object.keys(after)}`);
  await page.click('#graph-show');
  const back = await drawn();
  assert(demoNodes.every((n) => n in back), `after show all: ${Object.keys(back)}`);
});

await check('graph: clicking a node shows its details and links', async () => {
  const [x, y] = (await drawn())['demo/virtualNode/greeter'];
  const box = await page.locator('#graph').boundingBox();
  await page.mouse.click(box.x + x, box.y + y);
  await page.waitForSelector('#graph-side h3');
  assert((await page.locator('#graph-side h3').innerText()) === 'greeter', 'side panel');
  assert(await page.locator('#graph-side a[href="#/metrics/node/demo/greeter"]').count() === 1, 'no golden-metrics link');
});

await check('graph: clicking an edge shows its numbers and split', async () => {
  const mids = JSON.parse((await page.locator('#graph').getAttribute('data-edges')) ?? '{}');
  const [x, y] = mids['demo/virtualNode/greeter->demo/virtualService/greeting.demo.local'];
  const box = await page.locator('#graph').boundingBox();
  await page.mouse.click(box.x + x, box.y + y);
  await page.waitForFunction(() => document.querySelector('#graph-side h3')?.textContent === 'greeter → greeting.demo.local');
  const text = await page.locator('#graph-side').innerText();
  assert(/greeting-v2: observed .*, configured 10%/.test(text), `edge details: ${text}`);
});

await check('graph: the README weight change shows in the edge split within 30s', async () => {
  const edge = 'demo/virtualNode/greeter->demo/virtualService/greeting.demo.local';
  const before = (await graphState()).splits[edge];
  assert(Number(before?.['greeting-v2']?.configured) === 0.1, `split before the change: ${JSON.stringify(before)}`);
  const env = { ...process.env, MESHLENS_SERVER: api };
  const yaml = execFileSync(bin, ['get', 'route', 'split', '--mesh', 'demo', '-o', 'yaml'], { env });
  const changed = execFileSync('sed', ['s/weight: 90/weight: 50/; s/weight: 10/weight: 50/'], { input: yaml });
  execFileSync(bin, ['apply', '-f', '-'], { env, input: changed });
  const t0 = Date.now();
  const placed = await drawn();
  await poll('configured split 50/50', 30000, async () => {
    const s = (await graphState()).splits[edge] ?? {};
    return { ok: Number(s['greeting-v1']?.configured) === 0.5 && Number(s['greeting-v2']?.configured) === 0.5, s };
  });
  // The update redrew the graph in place: no node moved.
  const now = await drawn();
  for (const [id, p] of Object.entries(placed)) assert(JSON.stringify(now[id]) === JSON.stringify(p), `${id} moved from ${p} to ${now[id]}`);
  notes.push(`the configured split showed 50/50 ${((Date.now() - t0) / 1000).toFixed(1)}s after the apply`);
});

await check('metrics: a virtual node\'s golden-metrics page', async () => {
  if (!absent.has('/v1/console/instances')) {
    // The callers' view arrives with the proxies' next metrics report.
    const end = Date.now() + 30000;
    for (;;) {
      const r = await (await fetch(`${api}/v1/console/instances?mesh=demo&node=greeter`)).json();
      if ((r.instances ?? []).length) break;
      assert(Date.now() < end, `no instance of greeter in /v1/console/instances: ${JSON.stringify(r)}`);
      await page.waitForTimeout(500);
    }
  }
  await page.goto(`${api}/ui/#/metrics/node/demo/greeter`);
  if (absent.has('/v1/console/metrics')) {
    await page.waitForSelector('#plots [data-state="na"]');
  } else {
    await page.waitForSelector('#plot-rps canvas, #plots [data-state="empty"]');
    assert(await page.locator('#plot-rps canvas').count() > 0, 'no rate plot after a minute of traffic');
    await page.waitForSelector('#plot-latency canvas');
    await page.waitForSelector('#plot-errors canvas');
  }
  await page.waitForSelector('#instances');
  const inst = await page.locator('#instances tbody tr').allInnerTexts();
  assert(inst.some((t) => t.includes('greeter-1') && t.includes('HEALTHY')), `instances: ${JSON.stringify(inst)}`);
  if (!absent.has('/v1/console/instances')) {
    const views = await page.locator('#instances tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.view));
    assert(views.includes('healthy'), `callers' view of greeter's instances: ${JSON.stringify(views)}`);
  }
  await shot('console-metrics.png');
});

await check('traces: a trace opens as a waterfall', async () => {
  await page.goto(`${api}/ui/#/traces`);
  if (absent.has('/api/services')) {
    await page.waitForSelector('#trace-results [data-state="na"]');
    notes.push('no trace store on this control plane: the traces page shows its "not available" state');
    await shot('console-trace.png');
    return;
  }
  let services = (await (await fetch(api + '/api/services')).json()).data ?? [];
  if (!services.length) {
    // The demo sends no spans of its own: send the trace store a trace
    // of two spans over OTLP/HTTP, as a collector would, and open that.
    notes.push('the demo sent no spans: the waterfall was checked on a trace sent to the store over OTLP/HTTP');
    const now = BigInt(Date.now()) * 1000000n;
    const span = (svc, id, parent, from, to, attrs = []) => ({
      resource: { attributes: [{ key: 'service.name', value: { stringValue: svc } }] },
      scopeSpans: [{ spans: [{ traceId: '0af7651916cd43dd8448eb211c80319c', spanId: id, parentSpanId: parent, name: 'GET /', kind: 2,
        startTimeUnixNano: String(now + from * 1000000n), endTimeUnixNano: String(now + to * 1000000n), attributes: attrs }] }],
    });
    const r = await fetch(api + '/v1/traces', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ resourceSpans: [
      span('ingress', 'b7ad6b7169203331', '', 0n, 12n, [{ key: 'http.status_code', value: { intValue: '200' } }]),
      span('greeter', '00f067aa0ba902b7', 'b7ad6b7169203331', 2n, 9n),
    ] }) });
    assert(r.ok, `OTLP intake: ${r.status}`);
    await page.reload();
    services = ['ingress'];
  }
  await page.selectOption('#trace-service', services.includes('ingress') ? 'ingress' : services[0]);
  await page.click('#trace-search button');
  await page.waitForSelector('#trace-list a');
  await page.locator('#trace-list a').first().click();
  // The newest trace may still be missing spans its proxies have not
  // exported yet (each proxy exports on its own schedule, so a child can
  // arrive before its parent and show as a root): reload its page until a
  // child is indented under its parent and its bar starts later (15 s at
  // most).
  const nested = (layout) => layout.slice(1).some((l) => l.pad > layout[0].pad && l.left > layout[0].left);
  let rows = 0;
  let layout = [];
  for (let attempt = 0; attempt < 15; attempt++) {
    if (attempt > 0) {
      await page.waitForTimeout(1000);
      await page.reload();
    }
    await page.waitForSelector('#waterfall .span-row');
    rows = await page.locator('#waterfall .span-row').count();
    layout = await page.locator('#waterfall .span-row').evaluateAll((rs) => rs.map((r) => ({
      pad: parseFloat(r.querySelector('.span-label').style.paddingLeft), left: parseFloat(r.querySelector('.bar').style.left) })));
    if (rows >= 2 && nested(layout)) break;
  }
  assert(rows >= 2, `a waterfall of ${rows} spans`);
  assert(nested(layout), `waterfall layout: ${JSON.stringify(layout)}`);
  notes.push(`a trace opened as a waterfall of ${rows} spans`);
  await shot('console-trace.png');
});

await check('config: a bad spec shows its validation error with the field path', async () => {
  await page.goto(`${api}/ui/#/config`);
  await page.waitForSelector('#spec');
  await page.fill('#spec', 'kind: Route\nmesh: demo\nname: split\nvirtualRouter: greeting\nspec:\n  httpRoute:\n    match:\n      prefix: /\n    action:\n      weightedTargets:\n      - virtualNode: greeting-v1\n        weight: 900\n');
  expectedStatus.push(['/v1/apply', 400], ['/v1/console/validate', 400]);
  await page.click('#validate');
  const li = page.locator('#validate-errors li[data-path*="spec.httpRoute.action.weightedTargets[0].weight"]');
  await li.waitFor();
  const text = await li.innerText();
  assert(/between 0 and 100/.test(text), `error text: ${text}`);
  expectedStatus.length = 0;
});

await check('config: a valid spec shows what changes for traffic', async () => {
  await page.goto(`${api}/ui/#/config`);
  await page.waitForSelector('#spec');
  await page.fill('#spec', 'kind: Route\nmesh: demo\nname: split\nvirtualRouter: greeting\nspec:\n  httpRoute:\n    match:\n      prefix: /\n    action:\n      weightedTargets:\n      - virtualNode: greeting-v1\n        weight: 80\n      - virtualNode: greeting-v2\n        weight: 20\n');
  await page.click('#validate');
  await page.waitForSelector('#validate-result [data-state="valid"]');
  if (absent.has('/v1/console/validate')) {
    const diff = await page.locator('#validate-diff').innerText();
    assert(diff.includes('+ ') && diff.includes('weight: 80'), `diff: ${diff}`);
  } else {
    const t = await page.locator('#validate-changes').innerText();
    assert(t.includes('greeter') && / 80/.test(t) && / 50/.test(t), `changes: ${t}`);
  }
  // Nothing was written.
  const stored = await (await fetch(`${api}/v1/meshes/demo/virtualRouters/greeting/routes/split`)).json();
  assert(stored.spec.httpRoute.action.weightedTargets.every((w) => w.weight === 50), `stored: ${JSON.stringify(stored.spec)}`);
});

await check('config: a resource as YAML with its referrers', async () => {
  await page.goto(`${api}/ui/#/config/demo/Route/split?parent=greeting`);
  await page.waitForSelector('#resource-yaml');
  const y = await page.locator('#resource-yaml').innerText();
  assert(y.includes('weightedTargets') && y.includes('greeting-v2'), `yaml: ${y}`);
});

await check('tap: the live requests of a virtual node stream in as rows, and leaving stops the tap', async () => {
  await page.goto(`${api}/ui/#/tap/node/demo/greeter`);
  const rows = await poll('tapped requests', 30000, async () => {
    const statuses = await page.locator('#tap-rows td.tap-status').allInnerTexts();
    const state = await page.locator('.tap-state').getAttribute('data-state');
    return { ok: statuses.filter((s) => s === '200').length >= 3 && state === 'live', n: statuses.length, statuses: statuses.slice(0, 5), state };
  });
  assert(rows.n <= 200, `more rows than the page keeps: ${rows.n}`);
  const first = await page.locator('#tap-rows tr').first().innerText();
  assert(first.includes('greeter') && first.includes('GET'), `row: ${first}`);
  // Stop freezes the table.
  await page.click('#tap-toggle');
  assert((await page.locator('.tap-state').getAttribute('data-state')) === 'idle', 'not stopped');
  const stopped = await page.locator('#tap-rows tr').count();
  await page.waitForTimeout(1500);
  assert((await page.locator('#tap-rows tr').count()) === stopped, 'rows kept coming after Stop');
  await page.goto(`${api}/ui/#/graph`);
});

await check('every API endpoint docs/api.md documents is served', async () => {
  assert(missingRequired.length === 0, `documented but not served: ${missingRequired.join(', ')}`);
});

await page.waitForTimeout(500);
await context.close();
rmSync(userData, { recursive: true, force: true });
for (const n of notes) console.log(`note ${n}`);
if (problems.length) {
  failed++;
  console.log('FAIL browser errors:\n  ' + problems.join('\n  '));
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
