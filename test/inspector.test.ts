import { randomBytes } from 'node:crypto';
import { closeSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decompressFixture, FIXTURES_DIR, loadFixture } from '../fixtures/qemu/lib.mjs';
import { buildInspector } from '../web/build.mjs';
import { MigstreamError } from '../src/codec/errors.js';
import { decodeAll } from '../src/stream/decoder.js';
import type { StreamSummary } from '../src/stream/stats.js';
import { requireBuiltCli, runCli } from './support/cli.js';
import { CHROMIUM, CHROMIUM_ARGS, chromiumGate } from './support/chromium.js';

// The browser inspector (web/): real QEMU fixtures picked through its file input in headless Chromium,
// its rendered counts checked against `migstream inspect --json`, its page content against the guest's RAM.

requireBuiltCli(); // inspect --json and --html run from dist/
const available = chromiumGate('inspector test');

const root = join(import.meta.dirname, '..');
const ORIGIN = 'http://localhost:8573'; // never contacted: the page is served by page.route, anything else fails the test
const KINDS = ['zero', 'normal', 'xbzrle', 'compressed', 'lz4'] as const;

/** A fixture's stream and ground-truth RAM (dirty-bitmap is not one of loadFixture's configs). */
function fixture(name: string): { stream: Uint8Array; ram: Buffer } {
  if (name === 'block-lz4') return { stream: new Uint8Array(0), ram: loadFixture('block').ram }; // transcoded in beforeAll
  if (name !== 'dirty-bitmap') return loadFixture(name);
  const dir = join(FIXTURES_DIR, name);
  return { stream: decompressFixture(join(dir, 'stream.bin.br')), ram: decompressFixture(join(dir, 'ram.bin.br')) };
}

describe.skipIf(!available)('the stream inspector in headless Chromium', () => {
  let browser: Browser;
  let html: string;
  const dir = mkdtempSync(join(tmpdir(), 'migstream-inspector-'));
  const streams: Record<string, string> = {};

  beforeAll(async () => {
    html = await buildInspector(); // type-checks web/ too (the package build does not cover it)
    // inspect --html reads the page from dist/web, where npm run build:web puts it
    const out = join(root, 'dist/web/inspector.html');
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, html);
    for (const name of ['plain', 'xbzrle-hit', 'compress-l1', 'block', 'suppress-vmdesc', 'dirty-bitmap']) {
      streams[name] = join(dir, `${name}.bin`);
      writeFileSync(streams[name], fixture(name).stream);
    }
    // our extensions: LZ4 pages, 256 KiB zlib chunks, iteration digests (manifest and digest records shown)
    streams['block-lz4'] = join(dir, 'block-lz4.bin');
    const t = runCli(['transcode', streams.block!, streams['block-lz4'], '--compress', 'lz4', '--digest', '--chunk', '256K', '--chunk-compress', 'zlib']);
    expect(t.code, t.stderr).toBe(0);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: CHROMIUM_ARGS,
    });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A page with the inspector; every request but the page itself is recorded and aborted. */
  async function openInspector(page: Page, body = html): Promise<{ requests: string[]; errors: string[] }> {
    const requests: string[] = [];
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('request', (r) => {
      if (r.url() !== `${ORIGIN}/`) requests.push(r.url());
    });
    await page.route('**/*', (route) => (route.request().url() === `${ORIGIN}/` ? route.fulfill({ contentType: 'text/html', body }) : route.abort()));
    await page.goto(`${ORIGIN}/`);
    return { requests, errors };
  }

  async function pick(page: Page, path: string, input = '#file'): Promise<string> {
    await page.setInputFiles(input, path);
    await page.waitForSelector('#status[data-state]', { timeout: 60_000 });
    return (await page.getAttribute('#status', 'data-state'))!;
  }

  async function counts(page: Page): Promise<Record<string, number>> {
    return page.$$eval('[data-count]', (els) => Object.fromEntries(els.map((e) => [e.getAttribute('data-count')!, Number(e.textContent)])));
  }

  function expectSummaryCounts(c: Record<string, number>, s: StreamSummary): void {
    for (const k of KINDS) {
      expect(c[`totals.${k}.pages`], k).toBe(s.totals[k].pages);
      expect(c[`totals.${k}.bytes`], k).toBe(s.totals[k].bytes);
    }
    expect(c.iterations).toBe(s.iterations.length);
    expect(c.ramBlocks).toBe(s.ramBlocks.length);
    if (s.devices) expect(c.devices).toBe(s.devices.length);
    for (const d of s.blockDevices) {
      expect(c[`block.${d.device}.chunks`]).toBe(d.chunks);
      expect(c[`block.${d.device}.zeroChunks`]).toBe(d.zeroChunks);
    }
    for (const b of s.dirtyBitmaps) expect(c[`bitmap.${b.node}/${b.bitmap}.dirtyBytes`]).toBe(b.dirtyGranules * b.granularity);
  }

  /** The bytes a hex view shows. */
  async function hexBytes(page: Page, selector: string): Promise<Uint8Array> {
    const lines = await page.$$eval(`${selector} .hexline .bytes`, (els) => els.map((e) => e.textContent ?? ''));
    return Uint8Array.from(
      lines.flatMap((l) =>
        l
          .trim()
          .split(/\s+/)
          .filter(Boolean)
          .map((x) => parseInt(x, 16)),
      ),
    );
  }

  it.each([
    ['plain', 0x200000], // random data
    ['xbzrle-hit', 0x800000], // a hot page: its final content is XBZRLE deltas replayed on a first copy
    ['compress-l1', 0x300000], // the compressible pattern: zlib pages
    ['block', 0x800000 + 63 * 4096],
    ['suppress-vmdesc', 0x800000 + 500 * 4096],
    ['dirty-bitmap', 0x200000], // three block dirty bitmaps
    ['block-lz4', 0x808000], // a hot page as LZ4 pages
  ])(
    '%s: the rendered counts equal inspect --json, the page map totals the records, a page the guest RAM',
    async (name, offset) => {
      const json = runCli(['inspect', streams[name]!, '--json']);
      expect(json.code).toBe(0);
      const s = JSON.parse(json.stdout) as StreamSummary;
      const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      const net = await openInspector(page);
      expect(await pick(page, streams[name]!)).toBe('done');
      const c = await counts(page);
      expectSummaryCounts(c, s);
      const records = KINDS.reduce((n, k) => n + s.totals[k].pages, 0);
      expect(c['records.total']).toBe(records);
      expect(c['pagemap.total']).toBe(records);
      expect(s.ramBlocks.reduce((n, b) => n + c[`pagemap.${b.idstr}.records`]!, 0)).toBe(records);
      if (name === 'suppress-vmdesc') expect(await page.textContent('#devices')).toContain('split without a vmdesc');
      if (name === 'dirty-bitmap') expect(s.dirtyBitmaps.length).toBe(3);
      if (name === 'block-lz4') {
        expect(s.totals.lz4.pages).toBeGreaterThan(1000);
        expect(c['digests.records']).toBe(s.digests!.records);
        const listed = await page.$$eval('#extensions table.text code', (els) => els.map((e) => e.textContent));
        expect(listed).toEqual(s.manifest!.extensions.map((e) => e.name));
      }
      if (name === 'plain') {
        await page.click('#devices details summary'); // the vmdesc's VMState fields of the first section (timer)
        expect(await page.textContent('#devices details[data-device="0"]')).toContain('cpu_ticks_offset int64, 8 bytes');
      }
      // go to a page, check its final content against the guest's RAM (ground truth)
      await page.fill('#goto-offset', `0x${offset.toString(16)}`);
      await page.click('form.goto button');
      await page.waitForSelector('.pagedetails pre.hex');
      expect(await page.getAttribute('.pagedetails h3', 'data-page')).toBe(`pc.ram@${offset}`);
      const ram = fixture(name).ram;
      expect(Buffer.from(await hexBytes(page, '.pagedetails pre.hex')).equals(ram.subarray(offset, offset + 4096))).toBe(true);
      await page.close();
      expect(net.errors).toEqual([]);
      expect(net.requests).toEqual([]);
    },
    120_000,
  );

  it('a truncated stream shows the typed error with its offset and the bytes around it', async () => {
    const cut = join(dir, 'truncated.bin');
    writeFileSync(cut, readFileSync(streams.plain!).subarray(0, 5_000_000));
    let expected: MigstreamError | undefined;
    try {
      decodeAll(readFileSync(cut), () => {});
    } catch (e) {
      expected = e as MigstreamError;
    }
    expect(expected).toBeInstanceOf(MigstreamError);
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const net = await openInspector(page);
    expect(await pick(page, cut)).toBe('error');
    expect(await page.getAttribute('[data-error-code]', 'data-error-code')).toBe(expected!.code);
    expect(Number(await page.getAttribute('[data-error-offset]', 'data-error-offset'))).toBe(expected!.offset);
    expect(await page.textContent('#error')).toContain(expected!.detail);
    // the hex view starts 128 bytes before the offset and shows the file's bytes
    const shown = await hexBytes(page, '#error pre.hex');
    const file = readFileSync(cut);
    const start = Math.max(0, expected!.offset - 128);
    expect(Buffer.from(shown).equals(file.subarray(start, start + 256))).toBe(true);
    await page.close();
    expect(net.errors).toEqual([]);
    expect(net.requests).toEqual([]);
  }, 60_000);

  it('compare: the first differing page record and device section of a stream with two bytes changed', async () => {
    const a = readFileSync(streams.plain!);
    // the 1000th normal page and the 3rd device section of the copy get one byte flipped each
    let normal = 0;
    let recordIndex = -1;
    let records = 0;
    let flipPage = -1;
    let devices: { offset: number; size: number; idstr: string }[] = [];
    decodeAll(a, (ev) => {
      if (ev.type === 'page') {
        if (ev.kind === 'normal' && normal++ === 1000) {
          recordIndex = records;
          flipPage = ev.dataOffset + 100;
        }
        records++;
      } else if (ev.type === 'end') devices = ev.tail.devices;
    });
    const dev = devices[2]!;
    const b = Buffer.from(a);
    b[flipPage]! ^= 0xff;
    b[dev.offset + dev.size]! ^= 0x01; // the last byte of its data: type, id, idstr, instance and version come first
    const bPath = join(dir, 'plain-changed.bin');
    writeFileSync(bPath, b);
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const net = await openInspector(page);
    expect(await pick(page, streams.plain!)).toBe('done');
    await page.setInputFiles('#compare-file', bPath);
    await page.waitForSelector('#status[data-state=compared]', { timeout: 60_000 });
    expect(await page.textContent('[data-diff=iteration] .same')).toBe('identical'); // the same counts in every RAM section
    expect(await page.getAttribute('[data-diff=record] [data-diff-at]', 'data-diff-at')).toBe(
      `record ${recordIndex}: the same page and kind, a different payload`,
    );
    expect(await page.getAttribute('[data-diff=device] [data-diff-at]', 'data-diff-at')).toBe('section 2');
    expect(await page.textContent('[data-diff=device]')).toContain(dev.idstr);
    await page.close();
    expect(net.errors).toEqual([]);
    expect(net.requests).toEqual([]);
  }, 60_000);

  it('keyboard: a page map moves with the arrow keys and opens a page with Enter; no horizontal scrolling on a phone', async () => {
    const page = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    const net = await openInspector(page);
    expect(await pick(page, streams['xbzrle-hit']!)).toBe('done');
    await page.focus('#pages canvas');
    for (const key of ['ArrowRight', 'ArrowRight', 'ArrowDown', 'Enter']) await page.keyboard.press(key);
    // 128 pages per row: right, right, down = page 130
    expect(await page.getAttribute('.pagedetails h3', 'data-page')).toBe(`pc.ram@${130 * 4096}`);
    expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
    await page.close();
    expect(net.errors).toEqual([]);
    expect(net.requests).toEqual([]);
  }, 60_000);

  it('inspect --html writes the page with the summary embedded; it renders the same counts without the stream', async () => {
    const out = join(dir, 'block.html');
    const r = runCli(['inspect', streams.block!, '--html', out]);
    expect(r.code).toBe(0);
    const s = JSON.parse(runCli(['inspect', streams.block!, '--json']).stdout) as StreamSummary;
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const net = await openInspector(page, readFileSync(out, 'utf8'));
    await page.waitForSelector('#status[data-state=embedded]');
    expectSummaryCounts(await counts(page), s);
    await page.close();
    expect(net.errors).toEqual([]);
    expect(net.requests).toEqual([]);
  }, 60_000);

  it('a 1 GiB-RAM stream decodes in the page without the tab growing past 300 MiB (peak RSS of its renderer)', async () => {
    // A mostly-zero 1 GiB dump with 12 MiB of random data: 262,144 page records, a 14 MiB stream.
    const dump = join(dir, 'big.dump');
    const fd = openSync(dump, 'w');
    ftruncateSync(fd, 2 ** 30);
    const data = randomBytes(12 << 20);
    writeSync(fd, data, 0, 8 << 20, 100 << 20);
    writeSync(fd, data, 8 << 20, 4 << 20, 900 << 20);
    closeSync(fd);
    const stream = join(dir, 'big.bin');
    expect(runCli(['encode', '--dumps', dump, '--out', stream]).code).toBe(0);
    rmSync(dump);
    const s = JSON.parse(runCli(['inspect', stream, '--json']).stdout) as StreamSummary;
    expect(s.ramBlocks[0]!.length).toBe(2 ** 30);

    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const net = await openInspector(page);
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Performance.enable');
    const jsHeap = async () => (await cdp.send('Performance.getMetrics')).metrics.find((m) => m.name === 'JSHeapUsedSize')!.value;
    // The tab's renderer process (the browser names its renderers; the page's is the one that grows).
    const bcdp = await browser.newBrowserCDPSession();
    const procs = (await bcdp.send('SystemInfo.getProcessInfo')) as { processInfo: { type: string; id: number }[] };
    const renderers = procs.processInfo.filter((p) => p.type === 'renderer').map((p) => p.id);
    expect(renderers.length).toBeGreaterThan(0);
    const status = (pid: number, field: string) => Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`${field}:\\s+(\\d+) kB`))![1]) / 1024;
    const before = new Map(renderers.map((pid) => [pid, status(pid, 'VmRSS')]));
    for (const pid of renderers) writeFileSync(`/proc/${pid}/clear_refs`, '5'); // resets VmHWM: from here it is the peak of the decode
    let heapPeak = await jsHeap();
    const sampler = setInterval(
      () =>
        jsHeap().then(
          (v) => (heapPeak = Math.max(heapPeak, v)),
          () => {},
        ),
      100,
    );
    expect(await pick(page, stream)).toBe('done');
    clearInterval(sampler);
    const growth = Math.max(...renderers.map((pid) => status(pid, 'VmHWM') - before.get(pid)!));
    const peak = Math.max(...renderers.map((pid) => status(pid, 'VmHWM')));
    console.log(
      `1 GiB guest, ${(readFileSync(stream).length / 2 ** 20).toFixed(1)} MiB stream: renderer peak RSS ${peak.toFixed(0)} MiB, growth ${growth.toFixed(0)} MiB; main-thread JS heap peak ${(heapPeak / 2 ** 20).toFixed(1)} MiB`,
    );
    expect(growth).toBeLessThan(300);
    const c = await counts(page);
    expectSummaryCounts(c, s);
    expect(c['pagemap.total']).toBe(2 ** 18);
    // a page of the random data, rebuilt from the file
    await page.fill('#goto-offset', String((100 << 20) + 5 * 4096));
    await page.click('form.goto button');
    await page.waitForSelector('.pagedetails pre.hex');
    expect(await page.getAttribute('.pagedetails h3', 'data-page')).toBe(`pc.ram@${(100 << 20) + 5 * 4096}`);
    expect(Buffer.from(await hexBytes(page, '.pagedetails pre.hex')).equals(data.subarray(5 * 4096, 6 * 4096))).toBe(true);
    await page.close();
    expect(net.errors).toEqual([]);
    expect(net.requests).toEqual([]);
  }, 180_000);
});
