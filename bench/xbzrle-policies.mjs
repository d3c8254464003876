// Bytes on the wire without XBZRLE, and with the LRU and QEMU-model caches at several budgets, with
// cache hit rates: on the real-QEMU fixtures (transcode) and on a captured dump series (encode).
// Run: npm run build && node bench/xbzrle-policies.mjs [--no-dumps]
import { existsSync } from 'node:fs';
import { CONFIGS, FIXTURES_DIR, loadFixture } from '../fixtures/qemu/lib.mjs';
import { encodeDumps, Transcoder, StreamDecoder } from '../dist/index.node.js';

const BUDGETS = [256 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20];
const mib = (n) => `${n >= 1 << 20 ? n / (1 << 20) + ' MiB' : n / 1024 + ' KiB'}`;

function totals(history) {
  const t = { hits: 0, miss: 0 };
  for (const s of history) {
    t.hits += s.pages;
    t.miss += s.cacheMiss;
  }
  return t;
}

function transcode(stream, xbzrle) {
  let bytes = 0;
  const t = new Transcoder((c) => (bytes += c.length), { xbzrle });
  const d = new StreamDecoder(t.handle);
  d.push(stream);
  d.end();
  return { bytes, ...totals(t.xbzrleStats) };
}

function encode(series, xbzrle) {
  let bytes = 0;
  const r = encodeDumps(series, (c) => (bytes += c.length), { xbzrle });
  return { bytes, ...totals(r.xbzrle) };
}

function table(title, run) {
  const base = run(undefined);
  console.log(`\n${title}: ${base.bytes} bytes without XBZRLE\n`);
  console.log('| cache | LRU bytes | LRU vs none | LRU hit rate | QEMU bytes | QEMU vs none | QEMU hit rate |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|');
  for (const b of BUDGETS) {
    const cells = [];
    for (const policy of ['lru', 'qemu']) {
      const r = run({ cacheBytes: b, policy });
      const rate = r.hits + r.miss ? r.hits / (r.hits + r.miss) : 0;
      cells.push(r.bytes, `${((100 * r.bytes) / base.bytes).toFixed(1)}%`, `${(100 * rate).toFixed(1)}%`);
    }
    console.log(`| ${mib(b)} | ${cells.join(' | ')} |`);
  }
}

for (const c of CONFIGS) {
  if (!existsSync(`${FIXTURES_DIR}/${c.name}/stream.bin.br`) || c.name.startsWith('block') || c.name === 'ignore-shared') continue;
  if (!['plain', 'xbzrle-hit', 'compress-l1'].includes(c.name)) continue;
  const { stream } = loadFixture(c.name);
  table(`fixture ${c.name} (transcode)`, (x) => transcode(stream, x));
}

if (!process.argv.includes('--no-dumps')) {
  const dumps = await import('../fixtures/dumps/lib.mjs').catch(() => undefined);
  if (!dumps) console.log('\n(no dump series: fixtures/dumps is missing)');
  else {
    const { files } = await dumps.ensureDumps({ quiet: true });
    const { readFileSync } = await import('node:fs');
    const series = [{ idstr: 'pc.ram', dumps: files.map((f) => new Uint8Array(readFileSync(f))) }];
    table(`captured dump series (${files.length} dumps of ${mib(series[0].dumps[0].length)}, encode)`, (x) => encode(series, x));
  }
}
