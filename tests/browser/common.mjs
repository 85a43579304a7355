// What the browser scripts share: Debian's headless Chromium launched for one rampart
// host (resolved to 127.0.0.1, certificate errors ignored by each context), assertions,
// TOTP codes from oathtool, and the password the scripts enroll with.
import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export const password = 'vivid-otter-canyon-42-lamp';

// The script's arguments, or exit 64 with its usage line.
export function argv(script, names) {
  const values = process.argv.slice(2, 2 + names.length);
  if (values.length < names.length || values.some((v) => !v)) {
    console.error(`usage: node ${script} ${names.join(' ')}`);
    process.exit(64);
  }
  return values;
}

// A TOTP code of `secret` for now + `offset` seconds, computed by oathtool.
export const totp = (secret, offset) =>
  execFileSync('oathtool', ['--totp', '-b', '-N', `@${Math.floor(Date.now() / 1000) + offset}`, secret]).toString().trim();

export function expect(cond, what) {
  if (!cond) throw new Error(`expected ${what}`);
}

// Chromium with `host` mapped to loopback and nothing that calls out.
export function launch(host) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      `--host-resolver-rules=MAP ${host} 127.0.0.1`,
    ],
  });
}

// The cookies of curl's cookie jar (Netscape format: domain, subdomains, path, secure,
// expiry, name, value; HttpOnly cookies have their line prefixed with "#HttpOnly_"), for
// `origin`. Exits 1 when the jar holds none.
export function jarCookies(jarPath, origin) {
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
  return cookies;
}

// Collects what goes wrong in `page`: console errors, uncaught exceptions, and responses of
// 400 or more (the browser's own /favicon.ico request aside: rampart has none).
export function watchProblems(page) {
  const problems = [];
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(String(e)));
  page.on('response', (r) => {
    if (r.status() >= 400 && !r.url().endsWith('/favicon.ico')) problems.push(`${r.status()} for ${r.url()}`);
  });
  return problems;
}
