// Debian's Chromium driven by playwright-core (no browser download), with the flags that work
// offline and headless on a 2-core CI machine.
const { chromium } = require('playwright-core');

const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'];

exports.launch = () => chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args: ARGS });

exports.logger = (tag) => {
  const t0 = Date.now();
  return (...a) => console.log(`  [${tag} ${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);
};
