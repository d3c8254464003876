// Regenerates the inspector screenshots in docs/ (node web/screenshots.mjs, after npm run build:web):
// real QEMU fixtures opened through the file input in Debian's headless Chromium.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { loadFixture } from '../fixtures/qemu/lib.mjs';

const root = join(import.meta.dirname, '..');
const html = readFileSync(join(root, 'dist/web/inspector.html'), 'utf8');
const dir = mkdtempSync(join(tmpdir(), 'migstream-shots-'));
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu'] });

async function shoot(fixture, viewport, out, act) {
  const file = join(dir, `${fixture}.bin`);
  writeFileSync(file, fixture === 'truncated' ? loadFixture('plain').stream.subarray(0, 5_000_000) : loadFixture(fixture).stream);
  const page = await browser.newPage({ viewport, deviceScaleFactor: 1 });
  await page.route('**/*', (r) => (r.request().url() === 'http://localhost:8574/' ? r.fulfill({ contentType: 'text/html', body: html }) : r.abort()));
  await page.goto('http://localhost:8574/');
  await page.setInputFiles('#file', file);
  await page.waitForSelector('#status[data-state]');
  await act(page);
  await page.waitForTimeout(300);
  await page.screenshot({ path: join(root, 'docs', out) });
  await page.close();
  console.log(`wrote docs/${out}`);
}

await shoot('xbzrle-hit', { width: 1280, height: 800 }, 'inspector-overview.png', async () => {});
await shoot('xbzrle-hit', { width: 1280, height: 800 }, 'inspector-pages.png', async (page) => {
  await page.fill('#goto-offset', '0x808000');
  await page.click('form.goto button');
  await page.waitForSelector('.pagedetails pre.hex');
  await page.evaluate(() => document.getElementById('pages').scrollIntoView());
});
await shoot('xbzrle-hit', { width: 1280, height: 800 }, 'inspector-iterations.png', async (page) => {
  await page.evaluate(() => document.getElementById('timeline').scrollIntoView());
});
await shoot('block', { width: 1280, height: 800 }, 'inspector-block.png', async (page) => {
  await page.click('#block details summary');
  await page.evaluate(() => document.getElementById('block').scrollIntoView());
});
await shoot('suppress-vmdesc', { width: 1280, height: 800 }, 'inspector-devices.png', async (page) => {
  await page.click('#devices details summary');
  await page.click('#devices details button');
  await page.waitForSelector('#devices pre.hex');
  await page.evaluate(() => document.getElementById('devices').scrollIntoView());
});
await shoot('plain', { width: 1280, height: 800 }, 'inspector-compare.png', async (page) => {
  const other = join(dir, 'suppress-vmdesc.bin');
  writeFileSync(other, loadFixture('suppress-vmdesc').stream);
  await page.setInputFiles('#compare-file', other);
  await page.waitForSelector('#status[data-state=compared]');
});
await shoot('truncated', { width: 390, height: 844 }, 'inspector-phone-error.png', async () => {});
await browser.close();
rmSync(dir, { recursive: true, force: true });
