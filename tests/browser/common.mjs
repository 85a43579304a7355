// What the browser scripts share: Debian's headless Chromium launched for one rampart
// host (resolved to 127.0.0.1, certificate errors ignored by each context), assertions,
// TOTP codes from oathtool, and the password the scripts enroll with.
import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';

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
