// Opens the /logs page with live tail on, in Debian's headless Chromium with the session
// cookie of a logged-in admin (read from curl's cookie jar), filtered on one word; once the
// page says it is live, pushes two lines with a log source's token (one with the word and
// an email, one without), and checks that the first appears at the top of the table,
// scrubbed, without a reload, and the second does not. No console error, no failed request.
//
// usage: node tail.mjs ORIGIN COOKIE_JAR LOG_TOKEN
import { argv, expect, jarCookies, launch, watchProblems } from './common.mjs';

const [origin, jarPath, token] = argv('tail.mjs', ['ORIGIN', 'COOKIE_JAR', 'LOG_TOKEN']);
const host = new URL(origin).hostname;

const browser = await launch(host);
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  await context.addCookies(jarCookies(jarPath, origin));
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  const problems = watchProblems(page);
  try {
    const response = await page.goto(`${origin}/logs?since=15m&q=tailcheck&tail=on`);
    expect(response.status() === 200, `the logs page to answer 200, got ${response.status()}`);
    await page.waitForSelector('#lines[data-live=yes]');
    // Pushed from the page itself (same origin), as a shipper would with its token.
    const pushed = await page.evaluate(async (t) => {
      const r = await fetch('/ingest/ndjson', {
        method: 'POST',
        headers: { authorization: `Bearer ${t}`, 'content-type': 'application/x-ndjson' },
        body: '{"level":"error","msg":"unrelated line"}\n'
          + '{"level":"error","msg":"tailcheck from bob@example.com"}\n',
      });
      return r.status;
    }, token);
    expect(pushed === 200, `the push to be stored, got ${pushed}`);
    await page.waitForFunction(
      () => (document.querySelector('#lines tbody tr')?.textContent ?? '').includes('tailcheck from [EMAIL]'),
    );
    const table = await page.textContent('#lines');
    expect(!table.includes('unrelated line'), 'the line without the word to stay out');
    expect(!table.includes('bob@example.com'), 'no email in the page');
    expect(await page.getAttribute('#lines tbody tr', 'class') === 'error', 'the row to carry its level');
    expect((await page.textContent('#tail-status')).startsWith('Live tail: new lines'), 'the status to say live');
  } catch (e) {
    const shown = await page.textContent('#lines').catch(() => '?');
    throw new Error(`${e.message}; errors in the page: ${problems.join(' | ') || 'none'}; table: ${shown.slice(0, 2000)}`);
  }
  if (problems.length > 0) throw new Error(`errors in the page: ${problems.join(' | ')}`);
  console.log('tail passed');
} finally {
  await browser.close();
}
