// Drives Debian's headless Chromium with a virtual authenticator (DevTools protocol,
// WebAuthn domain: CTAP2, internal transport, resident keys, user verification) through a
// security key's life in rampart: enroll the first admin (password, TOTP from oathtool),
// add the key from the account page, log out, log in with the password and the key, and
// land on the dashboard. Exits non-zero on any failure.
//
// usage: node webauthn.mjs ORIGIN ENROLL_URL SCREENSHOT_DIR
import { argv, expect, launch, password, totp } from './common.mjs';

const [origin, enrollUrl, shots] = argv('webauthn.mjs', ['ORIGIN', 'ENROLL_URL', 'SCREENSHOT_DIR']);
const host = new URL(origin).hostname;

const browser = await launch(host);
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  const scriptErrors = [];
  // Console errors, except the browser's own request for /favicon.ico (rampart has none).
  page.on('console', (m) => {
    if (m.type() === 'error' && !(m.location().url || '').endsWith('/favicon.ico')) {
      scriptErrors.push(`${m.text()} (${m.location().url})`);
    }
  });
  page.on('pageerror', (e) => scriptErrors.push(e.message));

  // A virtual authenticator for this tab, as a platform passkey with user verification.
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });

  // 1. The first admin enrolls: password, then TOTP.
  await page.goto(enrollUrl);
  await page.fill('input[name=password]', password);
  await page.fill('input[name=confirm]', password);
  await page.click('button');
  await page.waitForURL('**/mfa/enroll');
  const secret = (await page.textContent('#totp-secret')).trim();
  await page.fill('input[name=code]', totp(secret, 0));
  await page.click('button:has-text("Confirm")');
  await page.waitForSelector('ul.codes');

  // 2. The account page adds the key (its script asks the authenticator).
  await page.goto(`${origin}/account`);
  await page.waitForSelector('#webauthn-add[data-ready=yes]');
  await page.fill('#webauthn-add input[name=name]', 'virtual key');
  await page.click('#webauthn-register');
  await page.waitForSelector('#webauthn-keys td:has-text("virtual key")');
  const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  expect(credentials.length === 1, `one credential in the authenticator, got ${credentials.length}`);
  expect(credentials[0].rpId === host, `the credential is for ${host}, got ${credentials[0].rpId}`);
  await page.screenshot({ path: `${shots}/webauthn-account.png`, fullPage: true });

  // 3. Log out, log in: password, then the key instead of a code.
  await page.click('nav button:has-text("Log out")');
  await page.waitForURL('**/login');
  await page.fill('input[name=login]', 'admin');
  await page.fill('input[name=password]', password);
  await page.click('button');
  await page.waitForURL('**/login/mfa');
  await page.waitForSelector('#webauthn-login[data-ready=yes]');
  await page.screenshot({ path: `${shots}/webauthn-login.png`, fullPage: true });
  await page.click('#webauthn-use');
  await page.waitForSelector('text=Security page, verified');
  expect(new URL(page.url()).pathname === '/', `the dashboard at /, got ${page.url()}`);
  const after = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  expect(after.credentials[0].signCount >= 1, 'the key signed once');
  expect(scriptErrors.length === 0, `no script errors, got ${scriptErrors.join('; ')}`);
  console.log('webauthn flow passed');
} catch (e) {
  console.error(`webauthn flow failed: ${e.message}`);
  for (const p of browser.contexts().flatMap((c) => c.pages())) {
    console.error(`at ${p.url()}:\n${(await p.textContent('body').catch(() => '')).slice(0, 2000)}`);
    await p.screenshot({ path: `${shots}/failure.png`, fullPage: true }).catch(() => {});
  }
  process.exitCode = 1;
} finally {
  await browser.close();
}
