// Drives Debian's chromium (headless, through playwright-core) against a
// control plane started with --auth-tokens: the console asks for a token,
// refuses a wrong one and names the role a token lacks, shows the graph
// with a read token (its data calls and its update stream carrying the
// token), and forgets the token on "sign out". Run by
// test/e2e/console_browser_test.go.
//
// Environment:
//   MESHLENS_CONSOLE_URL  the control plane's API URL
//   MESHLENS_READ_TOKEN   a token of role read
//   MESHLENS_NODE_TOKEN   a bootstrap token of one virtual node (403 on the console's API)
//   MESHLENS_NODE_ID      a node of the graph, e.g. au/virtualNode/greeter
//   CHROMIUM              the browser (default /usr/bin/chromium)

import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const api = process.env.MESHLENS_CONSOLE_URL;
const read = process.env.MESHLENS_READ_TOKEN;
const nodeToken = process.env.MESHLENS_NODE_TOKEN;
const nodeID = process.env.MESHLENS_NODE_ID;
if (!api || !read || !nodeToken || !nodeID) {
  console.error('MESHLENS_CONSOLE_URL, MESHLENS_READ_TOKEN, MESHLENS_NODE_TOKEN and MESHLENS_NODE_ID are required');
  process.exit(2);
}

let failed = 0;
async function check(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    console.log(`ok   ${name} (${Date.now() - t0}ms)`);
  } catch (err) {
    failed++;
    console.log(`FAIL ${name}: ${err?.stack ?? err}`);
    console.log(`page (${page.url()}):\n${await page.evaluate(() => document.body.innerText).catch((e) => e)}`);
    console.log(`API calls: ${JSON.stringify(apiCalls.map(([p, st, a]) => [p, st, !!a]))}`);
  }
}
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

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
const apiCalls = []; // [path, status, had Authorization]
page.on('console', (msg) => {
  if (msg.type() !== 'error') return;
  if (msg.text().startsWith('Failed to load resource: the server responded with a status of')) return;
  problems.push(`console error: ${msg.text()}`);
});
page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
page.on('response', async (resp) => {
  const u = new URL(resp.url());
  if (u.pathname.startsWith('/ui/')) return;
  const auth = (await resp.request().headerValue('authorization')) ?? '';
  apiCalls.push([u.pathname, resp.status(), auth]);
});

try {
  await check('without a token the console asks for one', async () => {
    await page.goto(`${api}/ui/#/graph`);
    await page.waitForSelector('#signin #signin-token');
    const stored = await page.evaluate(() => [sessionStorage.getItem('meshlens.token'), localStorage.getItem('meshlens.token')]);
    assert(stored[0] === null && stored[1] === null, `a token is stored before signing in: ${stored}`);
  });

  await check('a wrong token keeps the form, with an error', async () => {
    await page.fill('#signin-token', 'mlt_000000000000_' + 'A'.repeat(43));
    await page.click('#signin button[type=submit]');
    await page.waitForFunction(() => /refused/.test(document.getElementById('signin-error')?.textContent ?? ''));
    assert(await page.isVisible('#signin'), 'the form is gone after a wrong token');
    assert((await page.evaluate(() => sessionStorage.getItem('meshlens.token'))) === null, 'a wrong token was kept');
  });

  await check('a token without role read is told the role it needs', async () => {
    await page.fill('#signin-token', nodeToken);
    await page.click('#signin button[type=submit]');
    await page.waitForFunction(() => /needs role read/.test(document.getElementById('signin-error')?.textContent ?? ''));
    assert(await page.isVisible('#signin'), 'the form is gone after a token without role read');
  });

  await check('a read token shows the graph with its nodes', async () => {
    apiCalls.length = 0;
    const stream = page.waitForResponse((r) => r.url().includes('/v1/console/graph/stream') && r.status() === 200);
    stream.catch(() => {}); // awaited below
    await page.fill('#signin-token', read);
    await page.click('#signin button[type=submit]');
    await page.waitForSelector(`#nodes tr[data-node-id="${nodeID}"]`);
    assert(!(await page.isVisible('#signin')), 'the form is still shown after signing in');
    await stream;
    const stored = await page.evaluate(() => [sessionStorage.getItem('meshlens.token'), localStorage.getItem('meshlens.token')]);
    assert(stored[0] === read && stored[1] === null, `the token is not (only) in sessionStorage: ${JSON.stringify(stored)}`);
    const paths = new Set(apiCalls.map(([p]) => p));
    for (const p of ['/v1/meshes', '/v1/console/graph', '/v1/console/graph/stream']) assert(paths.has(p), `no call to ${p}: ${[...paths]}`);
    // Every call carries the token: with tokens on, the page has no
    // <link rel=preload> of /v1/meshes, which would go without one.
    const bad = apiCalls.filter(([, st, auth]) => st >= 400 || auth !== `Bearer ${read}`);
    assert(bad.length === 0, `API calls without the token or refused: ${JSON.stringify(bad)}`);
    assert(await page.isVisible('#sign-out'), 'no "sign out"');
  });

  await check('"sign out" forgets the token and asks again', async () => {
    await page.click('#sign-out');
    await page.waitForSelector('#signin #signin-token');
    assert((await page.evaluate(() => sessionStorage.getItem('meshlens.token'))) === null, 'the token is still stored');
  });

  await check('no browser errors', async () => {
    assert(problems.length === 0, problems.join('\n'));
  });
} finally {
  await context.close();
  rmSync(userData, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
