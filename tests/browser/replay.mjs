// Opens an SSH recording page in Debian's headless Chromium with the session cookie of a
// logged-in admin (read from curl's cookie jar), and checks that the vendored asciinema
// player starts under the page's content security policy, with no error in the console,
// and shows the recording's text once sought to its end. Exits non-zero on any failure.
//
// usage: node replay.mjs ORIGIN COOKIE_JAR RECORDING_PATH EXPECTED_TEXT
import { argv, jarCookies, launch, watchProblems } from './common.mjs';

const [origin, jarPath, path, expected] =
  argv('replay.mjs', ['ORIGIN', 'COOKIE_JAR', 'RECORDING_PATH', 'EXPECTED_TEXT']);
const host = new URL(origin).hostname;

const cookies = jarCookies(jarPath, origin);

const browser = await launch(host);
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  await context.addCookies(cookies);
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  const problems = watchProblems(page);

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
