// Drives Debian's headless Chromium through the first admin's journey: enroll from the
// one-time link (password, then TOTP from a QR page), log out, log in again with a code
// computed independently by oathtool, and create a user. Exits non-zero on any failure.
//
// usage: node admin_flow.mjs ORIGIN ENROLL_URL SCREENSHOT_DIR
import { argv, expect, launch, password, totp } from './common.mjs';

const [origin, enrollUrl, shots] = argv('admin_flow.mjs', ['ORIGIN', 'ENROLL_URL', 'SCREENSHOT_DIR']);
const host = new URL(origin).hostname;

const browser = await launch(host);
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
