import { existsSync } from 'node:fs';

/** Debian's chromium package: the browser tests never download one. */
export const CHROMIUM = '/usr/bin/chromium';

/** Whether a browser test runs: Chromium installed; with MIGSTREAM_REQUIRE_BROWSER=1 a missing one fails instead of skipping. */
export function chromiumGate(what: string): boolean {
  const available = existsSync(CHROMIUM);
  if (!available && process.env.MIGSTREAM_REQUIRE_BROWSER === '1')
    throw new Error(`MIGSTREAM_REQUIRE_BROWSER=1 but ${CHROMIUM} is missing (apt-get install chromium)`);
  if (!available) console.warn(`skipping the ${what}: ${CHROMIUM} is missing (apt-get install chromium)`);
  return available;
}

/** Headless Chromium in a sandbox-less container, with nothing of its own going to the network. */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
