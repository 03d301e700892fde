// Measures the console's graph page in Debian's chromium (headless,
// through playwright-core) against a running control plane: for each run,
// in a fresh browser context, the first paint of the graph (navigation
// start to the 'meshlens:graph-first-paint' performance mark the console
// sets once the frame that shows the graph is painted) and
// MESHLENS_PERF_UPDATES live updates (a server-sent graph's arrival to the
// 'meshlens:graph-update' mark, once the frame that shows it is painted).
// The first paint must show the whole graph: every node and edge of it
// drawn, every node inside the canvas. After the last run it checks, on
// that large graph, that find and hide take nodes and their edges off the
// graph and show all brings them back, that clicking a node shows its
// details and clicking an edge its numbers. Fails on any of that, and on
// any browser console error, page error or failed request. Prints one
// JSON line last: {"runs":[{"firstPaint":ms,"updates":[ms,...]}],
// "nodes":n,"edges":n,"drawnNodes":n}. Run by bench/cmd/consolebench.
//
// Environment:
//   MESHLENS_CONSOLE_URL   the control plane's API URL
//   MESHLENS_PERF_RUNS     page loads measured (default 3)
//   MESHLENS_PERF_UPDATES  live updates measured per page load (default 2)
//   CHROMIUM               the browser (default /usr/bin/chromium)

import { chromium } from 'playwright-core';

const api = process.env.MESHLENS_CONSOLE_URL;
if (!api) {
  console.error('MESHLENS_CONSOLE_URL is required');
  process.exit(2);
}
const runs = Number(process.env.MESHLENS_PERF_RUNS ?? 3);
const updates = Number(process.env.MESHLENS_PERF_UPDATES ?? 2);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const problems = [];
const out = { runs: [], nodes: 0, edges: 0, drawnNodes: 0 };
const attr = async (page, name) => JSON.parse((await page.locator('#graph').getAttribute(name)) ?? '{}');
try {
  for (let r = 0; r < runs; r++) {
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();
    page.on('console', (msg) => {
      // Chromium logs every HTTP error answer as a console error; those are
      // judged by the response itself (below).
      if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource: the server responded with a status of')) problems.push(`console error: ${msg.text()}`);
    });
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('requestfailed', (req) => {
      if (req.failure()?.errorText !== 'net::ERR_ABORTED') problems.push(`request failed: ${req.url()}: ${req.failure()?.errorText}`);
    });
    page.on('response', (resp) => { if (resp.status() >= 400) problems.push(`HTTP ${resp.status()}: ${resp.request().method()} ${resp.url()}`); });
    await page.goto(`${api}/ui/#/graph`);
    const first = await (await page.waitForFunction(() => {
      const m = performance.getEntriesByName('meshlens:graph-first-paint')[0];
      return m && { t: m.startTime, ...m.detail };
    }, null, { timeout: 60000, polling: 100 })).jsonValue();
    if (first.shown !== first.nodes || first.drawnEdges !== first.edges) {
      problems.push(`the first paint drew ${first.shown} of the graph's ${first.nodes} nodes and ${first.drawnEdges} of its ${first.edges} edges`);
    }
    const box = await page.locator('#graph').boundingBox();
    const outside = Object.entries(await attr(page, 'data-nodes')).filter(([, [x, y]]) => x < 0 || y < 0 || x > box.width || y > box.height);
    if (outside.length) problems.push(`at the first paint, ${outside.length} nodes are outside the canvas, e.g. ${outside[0][0]} at ${outside[0][1]}`);
    const ups = await (await page.waitForFunction((n) => {
      const ms = performance.getEntriesByName('meshlens:graph-update');
      return ms.length >= n && ms.slice(0, n).map((m) => m.startTime - m.detail.received);
    }, updates, { timeout: 60000, polling: 250 })).jsonValue();
    const timing = await page.evaluate(() => performance.getEntriesByType('resource').filter((e) => e.name.includes('/v1/console/graph?'))
      .map((e) => `GET /v1/console/graph ${e.startTime.toFixed(0)}-${e.responseEnd.toFixed(0)} ms`));
    console.log(timing.join('; '));
    out.runs.push({ firstPaint: first.t, updates: ups });
    out.nodes = first.nodes;
    out.edges = first.edges;
    out.drawnNodes = first.drawnNodes;
    console.log(`run ${r + 1}: first paint ${first.t.toFixed(0)} ms (${first.nodes} nodes drawn as ${first.drawnNodes}, ${first.drawnEdges} edges), updates ${ups.map((u) => u.toFixed(0)).join(', ')} ms`);
    if (r === runs - 1) await interact(page, box);
    await context.close();
  }
} finally {
  await browser.close();
}

// interact checks that the large graph works as a small one does: find and
// hide, show all, clicking a node and an edge.
async function interact(page, box) {
  const check = (ok, what) => { if (!ok) problems.push(what); };
  const nodes = await attr(page, 'data-nodes');
  const edges = await attr(page, 'data-edges');
  // The nodes whose name has "-7" (vn-7, vn-70..79, vn-107, svc-7...):
  // hidden, they and their edges are off the graph.
  await page.fill('#graph-find', '-7');
  await page.click('#graph-hide');
  const hidNodes = await attr(page, 'data-nodes');
  const hidEdges = await attr(page, 'data-edges');
  const gone = Object.keys(nodes).filter((id) => !(id in hidNodes));
  check(gone.length > 0 && gone.every((id) => /-7/.test(id)) && !Object.keys(hidNodes).some((id) => /vn-7$/.test(id)),
    `hide found "-7" took off ${gone.length} nodes: ${gone.slice(0, 5)}...`);
  const stale = Object.keys(hidEdges).filter((id) => id.split('->').some((end) => gone.includes(end)));
  check(stale.length === 0 && Object.keys(hidEdges).length < Object.keys(edges).length, `after hiding, ${stale.length} edges of hidden nodes are still drawn: ${stale.slice(0, 3)}`);
  await page.click('#graph-show');
  const back = await attr(page, 'data-nodes');
  check(Object.keys(nodes).every((id) => id in back) && Object.keys(await attr(page, 'data-edges')).length === Object.keys(edges).length, 'show all did not bring every node and edge back');

  // A node: a single-version service and its version, drawn as one.
  const vn = Object.keys(nodes).find((id) => id.includes('/virtualNode/'));
  const [nx, ny] = back[vn];
  await page.mouse.click(box.x + nx, box.y + ny);
  await page.waitForSelector('#graph-side h3');
  const names = await page.locator('#graph-side h3').allInnerTexts();
  check(names.includes(vn.split('/').pop()), `clicking ${vn} showed ${names}`);

  // An edge: clicked at the middle of its line, away from any node, it
  // (or an edge crossing it there) shows its numbers.
  const pos = await attr(page, 'data-nodes');
  const mids = await attr(page, 'data-edges');
  const clear = ([x, y]) => x > 10 && y > 10 && x < box.width - 10 && y < box.height - 10 &&
    Object.values(pos).every(([px, py]) => Math.abs(px - x) > 30 || Math.abs(py - y) > 10);
  const pick = Object.entries(mids).find(([, m]) => clear(m));
  if (!pick) return check(false, 'no edge midpoint away from the nodes to click');
  const [mx, my] = pick[1];
  await page.mouse.click(box.x + mx, box.y + my);
  await page.waitForFunction(() => /→/.test(document.querySelector('#graph-side h3')?.textContent ?? ''), null, { timeout: 10000 }).catch(() => {});
  const title = (await page.locator('#graph-side h3').allInnerTexts())[0] ?? '';
  const near = Object.keys(mids).filter((id) => {
    const [a, b] = id.split('->').map((end) => pos[end]);
    return a && b && distance([mx, my], a, b) < 8;
  }).map((id) => id.split('->').map((end) => end.split('/').pop()).join(' → '));
  check(near.includes(title), `clicking the middle of ${pick[0]} showed "${title}", not one of the edges there: ${near}`);
}

function distance([px, py], [ax, ay], [bx, by]) {
  const dx = bx - ax;
  const dy = by - ay;
  const l2 = dx * dx + dy * dy;
  const t = l2 === 0 ? 0 : Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / l2));
  return Math.hypot(px - (ax + t * dx), py - (ay + t * dy));
}
if (problems.length) {
  console.error('browser errors:\n  ' + problems.join('\n  '));
  process.exit(1);
}
console.log(JSON.stringify(out));
