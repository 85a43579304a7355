// Opens an SSH recording page in Debian's headless Chromium with the session cookie of a
// logged-in admin (read from curl's cookie jar), and checks that the vendored asciinema
// player starts under the page's content security policy, with no error in the console,
// and shows the recording's text once sought to its end. Exits non-zero on any failure.
//
// usage: node replay.mjs ORIGIN COOKIE_JAR RECORDING_PATH EXPECTED_TEXT
import { argv, launch } from './common.mjs';
import { readFileSync } from 'node:fs';

const [origin, jarPath, path, expected] =
  argv('replay.mjs', ['ORIGIN', 'COOKIE_JAR', 'RECORDING_PATH', 'EXPECTED_TEXT']);
const host = new URL(origin).hostname;

// Netscape cookie file: domain, subdomains, path, secure, expiry, name, value; HttpOnly
// cookies have their line prefixed with "#HttpOnly_".
const cookies = readFileSync(jarPath, 'utf8')
  .split('\n')
  .filter((l) => l.trim() !== '' && (!l.startsWith('#') || l.startsWith('#HttpOnly_')))
  .map((l) => l.split('\t'))
  .filter((f) => f.length >= 7)
  .map((f) => ({ name: f[5], value: f[6].trim(), url: origin }));
if (cookies.length === 0) {
  console.error(`no cookie in ${jarPath}`);
  process.exit(1);
}

const browser = await launch(host);
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  await context.addCookies(cookies);
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  const problems = [];
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(String(e)));
  // A browser asks for /favicon.ico on its own; rampart has none.
  page.on('response', (r) => {
    if (r.status() >= 400 && !r.url().endsWith('/favicon.ico')) problems.push(`${r.status()} for ${r.url()}`);
  });

  try {
    const response = await page.goto(origin + path);
    if (response.status() !== 200) throw new Error(`the recording page answered ${response.status()}`);
    await page.waitForSelector('#player[data-started=yes] .ap-term');
    // The player's API answers with promises; the duration is known once the cast loaded.
    await page.evaluate(async () => {
      const p = window.rampartPlayer;
      for (let i = 0; i < 150; i++) {
        const d = await p.getDuration();
        if (d > 0) {
          await p.seek(d);
          return;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error('the recording never loaded');
    });
    await page.waitForFunction(
      (t) => (document.querySelector('#player .ap-term')?.textContent ?? '').includes(t),
      expected,
    );
  } catch (e) {
    const shown = await page.evaluate(() => document.querySelector('#player')?.innerHTML ?? 'no player').catch(() => '?');
    throw new Error(`${e.message}; errors in the page: ${problems.join(' | ') || 'none'}; player: ${shown.slice(0, 3000)}`);
  }
  if (problems.length > 0) throw new Error(`errors in the page: ${problems.join(' | ')}`);
  console.log('replay passed');
} finally {
  await browser.close();
}
