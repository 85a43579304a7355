// Drives Debian's headless Chromium through the first admin's journey: enroll from the
// one-time link (password, then TOTP from a QR page), log out, log in again with a code
// computed independently by oathtool, and create a user. Exits non-zero on any failure.
//
// usage: node admin_flow.mjs ORIGIN ENROLL_URL SCREENSHOT_DIR
import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';

const [origin, enrollUrl, shots] = process.argv.slice(2);
if (!origin || !enrollUrl || !shots) {
  console.error('usage: node admin_flow.mjs ORIGIN ENROLL_URL SCREENSHOT_DIR');
  process.exit(64);
}
const host = new URL(origin).hostname;
const password = 'vivid-otter-canyon-42-lamp';
const totp = (secret, offset) =>
  execFileSync('oathtool', ['--totp', '-b', '-N', `@${Math.floor(Date.now() / 1000) + offset}`, secret]).toString().trim();

function expect(cond, what) {
  if (!cond) throw new Error(`expected ${what}`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    `--host-resolver-rules=MAP ${host} 127.0.0.1`,
  ],
});
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);

  // 1. Enrollment link: choose a password.
  await page.goto(enrollUrl);
  expect((await page.textContent('h1')).includes('Welcome, admin'), 'the enrollment page greets admin');
  await page.fill('input[name=password]', password);
  await page.fill('input[name=confirm]', password);
  await page.click('button');

  // 2. Authenticator: a QR code and the key; confirm with a code.
  await page.waitForURL('**/mfa/enroll');
  expect(await page.locator('.qr svg').count() === 1, 'a QR code');
  await page.screenshot({ path: `${shots}/mfa-enroll.png`, fullPage: true });
  const secret = (await page.textContent('#totp-secret')).trim();
  await page.fill('input[name=code]', totp(secret, 0));
  await page.click('button:has-text("Confirm")');
  await page.waitForSelector('ul.codes');
  expect(await page.locator('ul.codes li').count() === 10, 'ten recovery codes');

  // 3. Dashboard, then log out.
  await page.click('text=Continue to the dashboard');
  await page.waitForSelector('text=Security page, verified');
  await page.screenshot({ path: `${shots}/dashboard.png`, fullPage: true });
  await page.click('nav button:has-text("Log out")');
  await page.waitForURL('**/login');

  // 4. Log in again: password, then the next step's code (the enrollment used this one).
  await page.fill('input[name=login]', 'admin');
  await page.fill('input[name=password]', password);
  await page.click('button');
  await page.waitForURL('**/login/mfa');
  await page.fill('input[name=code]', totp(secret, 30));
  await page.click('button');
  await page.waitForSelector('text=Security page, verified');

  // 5. Create a user; the page shows their one-time link.
  await page.click('nav >> text=Users');
  await page.fill('#add-user input[name=username]', 'carol');
  await page.fill('#add-user input[name=email]', 'carol@example.com');
  await page.fill('#add-user input[name=display_name]', 'Carol Example');
  await page.click('#add-user button');
  await page.waitForSelector('#enroll-link');
  const link = (await page.textContent('#enroll-link')).trim();
  expect(link.startsWith(`${origin}/enroll/`), `an enrollment link on ${origin}, got ${link}`);
  expect((await page.textContent('table')).includes('carol@example.com'), 'carol in the user table');
  await page.screenshot({ path: `${shots}/users.png`, fullPage: true });
  console.log('browser flow passed');
} catch (e) {
  console.error(`browser flow failed: ${e.message}`);
  for (const p of browser.contexts().flatMap((c) => c.pages())) {
    console.error(`at ${p.url()}:\n${(await p.textContent('body').catch(() => '')).slice(0, 2000)}`);
    await p.screenshot({ path: `${shots}/failure.png`, fullPage: true }).catch(() => {});
  }
  process.exitCode = 1;
} finally {
  await browser.close();
}
