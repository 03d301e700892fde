// Measures the console's graph page in Debian's chromium (headless,
// through playwright-core) against a running control plane: for each run,
// in a fresh browser context, the first paint of the graph (navigation
// start to the 'meshlens:graph-first-paint' performance mark the console
// sets on the frame that shows the graph) and MESHLENS_PERF_UPDATES live
// updates (a server-sent graph's arrival to the 'meshlens:graph-update'
// mark on the frame that shows it). Fails on any browser console error,
// page error or failed request. Prints one JSON line last:
// {"runs":[{"firstPaint":ms,"updates":[ms,...]}],"nodes":n,"edges":n}.
// Run by bench/cmd/consolebench.
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
const out = { runs: [], nodes: 0, edges: 0 };
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
      return m && { t: m.startTime, nodes: m.detail.nodes, edges: m.detail.edges };
    }, null, { timeout: 60000, polling: 100 })).jsonValue();
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
    console.log(`run ${r + 1}: first paint ${first.t.toFixed(0)} ms (${first.nodes} nodes, ${first.edges} edges), updates ${ups.map((u) => u.toFixed(0)).join(', ')} ms`);
    await context.close();
  }
} finally {
  await browser.close();
}
if (problems.length) {
  console.error('browser errors:\n  ' + problems.join('\n  '));
  process.exit(1);
}
console.log(JSON.stringify(out));
