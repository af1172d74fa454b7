// A browser for tests and headless runs: what a user does on the demo authorization server's
// login and consent pages, done in headless Chromium (Debian's, through playwright-core): sign
// in, consent, and let the redirect reach the MCP client's loopback callback. Then it exits: 0
// once the callback answered, 1 otherwise.
//
//   BROWSER="node authserver/browser.mjs %s &" uv run client.py --login
//
// Python's webbrowser runs $BROWSER with the URL for %s; the `&` matters: without it, the client
// waits for the browser to exit before it listens for the callback, and the login times out.
// Env: BROWSER_LOGIN (the user's name, default alice), BROWSER_LOG (a file; default stderr),
// CHROMIUM (default /usr/bin/chromium), BROWSER_TIMEOUT_MS (default 20000).
import { appendFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const url = process.argv[2];
const started = performance.now();
function log(message) {
  const line = `browser +${Math.round(performance.now() - started)} ms: ${message}\n`;
  if (process.env.BROWSER_LOG) appendFileSync(process.env.BROWSER_LOG, line);
  else process.stderr.write(line);
}
if (!URL.canParse(url ?? '')) {
  log('usage: node browser.mjs AUTHORIZATION_URL');
  process.exit(2);
}
const callback = new URL(url).searchParams.get('redirect_uri'); // where the page driving ends
if (!callback) {
  log('the authorization URL names no redirect_uri: nothing to drive the login to');
  process.exit(2);
}
const timeout = Number(process.env.BROWSER_TIMEOUT_MS ?? 20000);
const loopback = (u) => ['localhost', '127.0.0.1', '[::1]'].includes(new URL(u).hostname);

let browser;
let code = 1;
try {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: process.getuid?.() === 0 ? ['--no-sandbox'] : [], // Chromium's sandbox refuses root
  });
  const page = await browser.newPage();
  page.setDefaultTimeout(timeout);
  // Loopback only: the dev pages @import a web font, and nothing here leaves the machine.
  await page.route('**/*', (route) => (loopback(route.request().url()) ? route.continue() : route.abort()));
  const reached = page.waitForResponse((r) => r.url().startsWith(callback), { timeout });
  await page.goto(url, { waitUntil: 'domcontentloaded' });
  for (let step = 0; step < 6 && !page.url().startsWith(callback); step++) {
    const prompt = await page.locator('input[name=prompt]').getAttribute('value', { timeout: 5000 });
    if (prompt === 'login') {
      await page.fill('input[name=login]', process.env.BROWSER_LOGIN ?? 'alice');
      await page.fill('input[name=password]', 'any password: the demo pages take any');
    } else if (prompt !== 'consent') {
      throw new Error(`a page that is neither login nor consent: ${page.url()}`);
    }
    log(`${prompt} page`);
    await Promise.all([page.waitForNavigation({ waitUntil: 'domcontentloaded' }), page.click('[type=submit]')]);
  }
  const answer = await reached;
  log(`callback answered HTTP ${answer.status()}`);
  code = answer.ok() ? 0 : 1;
} catch (error) {
  log(`failed: ${error.message.split('\n')[0]}`);
} finally {
  await browser?.close();
  process.exit(code);
}
