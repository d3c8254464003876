// Per-page compression: zlib levels 1/6/9 (QEMU's framing: ours on node:zlib,
// ours on fflate, raw node:zlib, and native zlib via Python's C binding) and
// LZ4 accelerations 1/8/16 (migstream's liblz4 port, lz4-wasm-nodejs per call
// and through its exports, the native `lz4` tool benchmarking 4 KiB blocks),
// then worker scaling 1 → 2 through the pooled encoder. Every output is
// checked (round trip, and liblz4 byte equality) before anything is timed.
//
//   npm run build && node bench/compress.bench.mjs
//   COMPRESS_BENCH_MS=300 node bench/compress.bench.mjs
//
// Corpus: the non-zero pages of real guests' RAM, the ground-truth pc.ram of
// the committed QEMU 7.2 fixtures (fixtures/qemu/*/ram.bin.br: the paused
// source after migrating the test guest); zero pages are never compressed
// (they go out as ZERO records). MB = 1e6 bytes of input pages.
import '../dist/node/install.js'; // Node's codecs and worker pool, as the package's node condition loads them
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync, inflateSync } from 'node:zlib';
import { Bench } from 'tinybench';
import { loadFixture } from '../fixtures/qemu/lib.mjs';
import { isZeroPage } from '../dist/codec/zero.js';
import { fflateZlib } from '../dist/codec/zlib-page.js';
import { Lz4Compressor, lz4DecompressInto } from '../dist/codec/lz4-block.js';
import { nodeZlib } from '../dist/stream/zlib-node.js';
import { lz4KernelCompressPages, lz4KernelCompressView, lz4KernelDecompressInto, lz4KernelDecompressPages } from '../dist/codec/kernels/lz4-kernels.js';
import { lz4WasmApi, lz4WasmCompress, lz4WasmCompressBatch, lz4WasmDecompress, lz4WasmDecompressBatch } from '../dist/stream/lz4-wasm.js';
import { resolveSpec } from '../dist/stream/page-codecs.js';
import { PooledEncoder } from '../dist/stream/pool/pooled-encoder.js';
import { ThreadPool } from '../dist/stream/pool/thread-pool.js';
import { PiscinaPool } from '../dist/stream/pool/piscina-pool.js';

const PAGE = 4096;
const timeMs = Number(process.env.COMPRESS_BENCH_MS ?? 150);
const tmp = mkdtempSync(join(tmpdir(), 'migstream-bench-'));

// ---- corpus
const pages = [];
const seen = new Set();
for (const name of ['plain', 'xbzrle-hit', 'compress-l1']) {
  let ram;
  try {
    ram = loadFixture(name).ram;
  } catch {
    continue;
  }
  for (let o = 0; o < ram.length; o += PAGE) {
    const p = ram.subarray(o, o + PAGE);
    if (isZeroPage(p)) continue;
    const key = p.toString('base64');
    if (seen.has(key)) continue;
    seen.add(key);
    pages.push(new Uint8Array(p));
  }
}
const corpus = new Uint8Array(pages.length * PAGE);
pages.forEach((p, i) => corpus.set(p, i * PAGE));
const bytes = corpus.length;
const corpusFile = join(tmp, 'pages.bin');
writeFileSync(corpusFile, corpus);

const same = (a, b) =>
  a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;
function check(name, compress, decompress) {
  let total = 0;
  const blocks = pages.map((p) => {
    const c = compress(p);
    total += c.length;
    if (!same(decompress(c), p)) throw new Error(`${name}: round trip differs`);
    return c;
  });
  return { blocks, ratio: total / bytes };
}

const rows = [];
async function measure(row, compressAll, decompressAll) {
  const bench = new Bench({ time: timeMs, warmupTime: 20 });
  bench.add('c', compressAll);
  if (decompressAll) bench.add('d', decompressAll);
  await bench.run();
  // the fastest pass: on a shared machine interference only ever slows a pass down (as the native tools report theirs)
  const mbps = (t) => (t ? bytes / 1e6 / (t.result.latency.min / 1000) : undefined);
  rows.push({ ...row, compress: mbps(bench.tasks[0]), decompress: mbps(bench.tasks[1]) });
}

// ---- zlib
const py = spawnSync('python3', ['-c', 'import zlib; print(zlib.ZLIB_RUNTIME_VERSION)'], { encoding: 'utf8' });
function nativeZlib(level) {
  if (py.status !== 0) return undefined;
  const script = `
import zlib, time, sys
data = open(sys.argv[1], 'rb').read(); level = int(sys.argv[2]); P = 4096
pages = [data[i:i+P] for i in range(0, len(data), P)]
def c(): return [zlib.compressobj(level, zlib.DEFLATED, 15, 8).compress(p) for p in pages]
comp = [zlib.compress(p, level) for p in pages]
assert all(zlib.decompress(x) == p for x, p in zip(comp, pages))
def best(f):
  b = 1e9
  for _ in range(5):
    t = time.perf_counter(); f(); b = min(b, time.perf_counter() - t)
  return b
tc = best(lambda: [zlib.compress(p, level) for p in pages])
td = best(lambda: [zlib.decompress(x) for x in comp])
print(len(data) / 1e6 / tc, len(data) / 1e6 / td, sum(map(len, comp)) / len(data))`;
  const r = spawnSync('python3', ['-c', script, corpusFile, String(level)], { encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  const [c, d, ratio] = r.stdout.trim().split(/\s+/).map(Number);
  return { compress: c, decompress: d, ratio };
}

for (const level of [1, 6, 9]) {
  const ours = check(
    `zlib ${level} node`,
    (p) => nodeZlib.deflate(p, level),
    (c) => nodeZlib.inflate(c, PAGE),
  );
  await measure(
    { codec: `zlib ${level}`, impl: 'migstream, node:zlib', ratio: ours.ratio },
    () => {
      for (const p of pages) nodeZlib.deflate(p, level);
    },
    () => {
      for (const c of ours.blocks) nodeZlib.inflate(c, PAGE);
    },
  );
  const ff = check(
    `zlib ${level} fflate`,
    (p) => fflateZlib.deflate(p, level),
    (c) => fflateZlib.inflate(c, PAGE),
  );
  await measure(
    { codec: `zlib ${level}`, impl: 'migstream, fflate (portable)', ratio: ff.ratio },
    () => {
      for (const p of pages) fflateZlib.deflate(p, level);
    },
    () => {
      for (const c of ff.blocks) fflateZlib.inflate(c, PAGE);
    },
  );
  const raw = check(
    `zlib ${level} raw`,
    (p) => deflateSync(p, { level }),
    (c) => inflateSync(c),
  );
  await measure(
    { codec: `zlib ${level}`, impl: 'node:zlib deflateSync (baseline)', ratio: raw.ratio },
    () => {
      for (const p of pages) deflateSync(p, { level });
    },
    () => {
      for (const c of raw.blocks) inflateSync(c);
    },
  );
  const n = nativeZlib(level);
  if (n) rows.push({ codec: `zlib ${level}`, impl: `native zlib ${py.stdout.trim()} (Python binding)`, native: true, ...n });
}

// ---- LZ4
function nativeLz4(acc) {
  const level = acc === 1 ? '-b1' : `--fast=${acc - 1}`;
  const r = spawnSync('lz4', acc === 1 ? [level, '-i3', '-B4096', corpusFile] : ['-b', level, '-i3', '-B4096', corpusFile], { encoding: 'utf8' });
  const text = `${r.stdout}${r.stderr}`;
  const m = [...text.matchAll(/(\d+) ->\s+(\d+) \(([\d.]+)\),\s*([\d.]+) MB\/s ,\s*([\d.]+) MB\/s/g)].at(-1);
  if (!m) return undefined;
  return { compress: Number(m[4]), decompress: Number(m[5]), ratio: Number(m[2]) / Number(m[1]) };
}
const lz4Version = spawnSync('lz4', ['--version'], { encoding: 'utf8' }).stdout?.match(/v[\d.]+/)?.[0];
// the native row is the baseline every LZ4 ratio is read against: no silent table without it
if (!lz4Version) throw new Error('the native lz4 tool is needed for the LZ4 baseline and the liblz4 byte check: apt-get install lz4');

const out = new Uint8Array(PAGE);
for (const acc of [1, 8, 16]) {
  const c = new Lz4Compressor(acc);
  const ours = check(
    `lz4 ${acc}`,
    (p) => c.compress(p),
    (b) => {
      const o = new Uint8Array(PAGE);
      lz4DecompressInto(b, o);
      return o;
    },
  );
  // liblz4 equality: the native tool's 4 KiB blocks of the same pages are our blocks
  const lz4File = join(tmp, `pages-${acc}.lz4`);
  spawnSync('lz4', ['-q', '-f', '-B4096', '--no-frame-crc', acc === 1 ? '-1' : `--fast=${acc - 1}`, corpusFile, lz4File]);
  const frame = (await import('node:fs')).readFileSync(lz4File);
  let at = 4 + 2 + (frame[4] & 0x08 ? 8 : 0) + 1;
  ours.blocks.forEach((b, i) => {
    const word = frame.readUInt32LE(at);
    const size = word & 0x7fffffff;
    if (!(word & 0x80000000) && !same(frame.subarray(at + 4, at + 4 + size), b)) throw new Error(`lz4 ${acc}: block ${i} differs from liblz4`);
    at += 4 + size;
  });
  await measure(
    { codec: `lz4 acc ${acc}`, impl: 'migstream liblz4 port (TS)', ratio: ours.ratio },
    () => {
      for (const p of pages) c.compressView(p);
    },
    () => {
      for (const b of ours.blocks) lz4DecompressInto(b, out);
    },
  );
  // the wasm kernels (src/codec/kernels/lz4.c): liblz4's algorithm at this acceleration, per page and 64 pages per call
  const kernelAcc = check(
    `lz4 ${acc} kernel`,
    (p) => lz4KernelCompressView(p, acc).slice(),
    (b) => {
      const o = new Uint8Array(PAGE);
      lz4KernelDecompressInto(b, o);
      return o;
    },
  );
  if (kernelAcc.blocks.some((b, i) => !same(b, ours.blocks[i]))) throw new Error(`lz4 ${acc}: the kernel differs from the liblz4 port`);
  await measure(
    { codec: `lz4 acc ${acc}`, impl: 'migstream wasm kernel, liblz4 algorithm, per page', ratio: kernelAcc.ratio },
    () => {
      for (const p of pages) lz4KernelCompressView(p, acc);
    },
    () => {
      for (const b of kernelAcc.blocks) lz4KernelDecompressInto(b, out);
    },
  );
  if (acc === 1) {
    const flexKernel = check(
      'lz4_flex kernel',
      (p) => lz4KernelCompressView(p).slice(),
      (b) => {
        const o = new Uint8Array(PAGE);
        lz4KernelDecompressInto(b, o);
        return o;
      },
    );
    const sizes = Uint32Array.from(flexKernel.blocks, (b) => b.length);
    const joined = new Uint8Array(sizes.reduce((n, x) => n + x, 0));
    flexKernel.blocks.reduce((at, b) => (joined.set(b, at), at + b.length), 0);
    const kernelOut = new Uint8Array(corpus.length);
    const starts = new Uint32Array(sizes.length + 1);
    sizes.forEach((x, i) => (starts[i + 1] = starts[i] + x));
    if (lz4KernelDecompressPages(joined, sizes, PAGE, kernelOut) || !same(kernelOut, corpus)) throw new Error('lz4 kernel batch differs');
    await measure(
      { codec: 'lz4 acc 1', impl: 'migstream wasm kernel, lz4_flex algorithm (Node default), per page', ratio: flexKernel.ratio },
      () => {
        for (const p of pages) lz4KernelCompressView(p);
      },
      () => {
        for (const b of flexKernel.blocks) lz4KernelDecompressInto(b, out);
      },
    );
    await measure(
      { codec: 'lz4 acc 1', impl: 'migstream wasm kernel, lz4_flex algorithm, 64 pages per call (workers)', ratio: flexKernel.ratio },
      () => {
        for (let i = 0; i < corpus.length; i += 64 * PAGE) lz4KernelCompressPages(corpus.subarray(i, Math.min(corpus.length, i + 64 * PAGE)), PAGE);
      },
      () => {
        for (let i = 0; i < sizes.length; i += 64)
          lz4KernelDecompressPages(
            joined.subarray(starts[i], starts[Math.min(sizes.length, i + 64)]),
            sizes.subarray(i, i + 64),
            PAGE,
            kernelOut.subarray(i * PAGE),
          );
      },
    );
    const flex = check(
      'lz4_flex',
      (p) => lz4WasmCompress(p),
      (b) => lz4WasmDecompress(b, PAGE),
    );
    // the package's API: size-prefixed input and output, copied through its JS glue on every call
    const prefixed = flex.blocks.map((b) => {
      const x = new Uint8Array(b.length + 4);
      new DataView(x.buffer).setUint32(0, PAGE, true);
      x.set(b, 4);
      return x;
    });
    if (!same(lz4WasmApi.decompress(prefixed[0]), pages[0])) throw new Error('lz4 wasm API differs');
    if (flexKernel.blocks.some((b, i) => !same(b, flex.blocks[i]))) throw new Error('the lz4_flex kernel differs from lz4-wasm-nodejs');
    await measure(
      { codec: 'lz4 acc 1', impl: 'lz4-wasm-nodejs, its API per call', ratio: flex.ratio },
      () => {
        for (const p of pages) lz4WasmApi.compress(p);
      },
      () => {
        for (const b of prefixed) lz4WasmApi.decompress(b);
      },
    );
    await measure(
      { codec: 'lz4 acc 1', impl: 'lz4-wasm-nodejs, our per-page call on its exports', ratio: flex.ratio },
      () => {
        for (const p of pages) lz4WasmCompress(p);
      },
      () => {
        for (const b of flex.blocks) lz4WasmDecompress(b, PAGE);
      },
    );
    const batchOut = new Uint8Array(corpus.length);
    if (lz4WasmDecompressBatch(flex.blocks, PAGE, batchOut) || !same(batchOut, corpus)) throw new Error('lz4 wasm batch differs');
    await measure(
      { codec: 'lz4 acc 1', impl: 'lz4-wasm-nodejs, direct exports (batch form)', ratio: flex.ratio },
      () => {
        lz4WasmCompressBatch(corpus, PAGE);
      },
      () => {
        lz4WasmDecompressBatch(flex.blocks, PAGE, batchOut);
      },
    );
  }
  const n = nativeLz4(acc);
  if (!n) throw new Error(`lz4 -b printed no result for acceleration ${acc}`);
  rows.push({ codec: `lz4 acc ${acc}`, impl: `native lz4 ${lz4Version} (lz4 -b -B4096)`, native: true, ...n });
}

// ---- worker scaling: the pooled encoder compressing the corpus, 1 vs 2 workers
async function pooled(workers, spec, Pool, reps = 4) {
  const pool = new Pool(workers);
  try {
    const run = async () => {
      const chunks = [];
      const w = new PooledEncoder((c) => void chunks.push(c.length), { spec, pool, batchPages: 64, maxInFlight: 1024 });
      for (let r = 0; r < reps; r++) {
        pages.forEach((p, i) => w.compressPage('pc.ram', i * PAGE, p));
        await w.drain();
      }
      await w.finish();
      return chunks.reduce((a, b) => a + b, 0);
    };
    await run(); // warm the workers (wasm, JIT)
    const t = performance.now();
    await run();
    return (reps * bytes) / 1e6 / ((performance.now() - t) / 1000);
  } finally {
    await pool.close();
  }
}
/**
 * What the machine gives right now: N threads each deflating the corpus on
 * their own, no pool, no main thread. Its 2-vs-1 ratio is the ceiling for
 * the pool's scaling (other jobs share these cores).
 */
async function capacity(threads, ms = 600) {
  const { Worker } = await import('node:worker_threads');
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const zlib = require('node:zlib');
    const pages = workerData.pages, P = 4096;
    let n = 0; const t = Date.now();
    while (Date.now() - t < workerData.ms) { for (let i = 0; i < pages.length; i += P) zlib.deflateSync(pages.subarray(i, i + P), { level: 1 }); n++; }
    parentPort.postMessage(n * pages.length / ((Date.now() - t) / 1000) / 1e6);`;
  const rates = await Promise.all(
    Array.from(
      { length: threads },
      () =>
        new Promise((resolve, reject) => {
          const w = new Worker(code, { eval: true, workerData: { pages: corpus, ms } });
          w.once('message', resolve);
          w.once('error', reject);
        }),
    ),
  );
  return rates.reduce((a, b) => a + b, 0);
}
// 1- and 2-worker runs interleaved, best of ROUNDS each, so a burst of other load hits both sides alike
const ROUNDS = Number(process.env.COMPRESS_BENCH_ROUNDS ?? 4);
const configs = [{ name: 'ceiling: independent threads deflating (zlib 1), no pool', run: (n) => capacity(n) }];
for (const spec of [resolveSpec({ codec: 'zlib', level: 1 }), resolveSpec({ codec: 'lz4', acceleration: 1 })]) {
  for (const [poolName, Pool] of [
    ['ThreadPool (default)', ThreadPool],
    ['piscina', PiscinaPool],
  ]) {
    configs.push({ name: `${spec.codec === 'zlib' ? 'zlib level 1 (node:zlib)' : 'lz4 acc 1 (lz4_flex)'}, ${poolName}`, run: (n) => pooled(n, spec, Pool) });
  }
}
const scaling = configs.map((c) => ({ name: c.name, one: 0, two: 0 }));
for (let r = 0; r < ROUNDS; r++) {
  for (let i = 0; i < configs.length; i++) {
    scaling[i].one = Math.max(scaling[i].one, await configs[i].run(1));
    scaling[i].two = Math.max(scaling[i].two, await configs[i].run(2));
  }
}
rmSync(tmp, { recursive: true, force: true });

// ---- report
const fmt = (x) => (x === undefined ? '–' : x >= 100 ? x.toFixed(0) : x.toFixed(1));
const nativeOf = (codec) => rows.find((r) => r.codec === codec && r.native);
console.log(
  `corpus: ${pages.length} distinct non-zero 4 KiB pages (${(bytes / 1e6).toFixed(1)} MB) from the QEMU fixtures' RAM; node ${process.version}, zlib ${process.versions.zlib}\n`,
);
console.log('| codec | implementation | compress MB/s | decompress MB/s | ratio (out/in) | compress vs native |');
console.log('|---|---|---:|---:|---:|---:|');
for (const r of rows) {
  const n = nativeOf(r.codec);
  const vs = r.native || !n ? '' : `${((r.compress / n.compress) * 100).toFixed(0)}%`;
  console.log(`| ${r.codec} | ${r.impl} | ${fmt(r.compress)} | ${fmt(r.decompress)} | ${(r.ratio * 100).toFixed(1)}% | ${vs} |`);
}
console.log('\n| pooled compression | 1 worker MB/s | 2 workers MB/s | scaling |');
console.log('|---|---:|---:|---:|');
for (const s of scaling) console.log(`| ${s.name} | ${fmt(s.one)} | ${fmt(s.two)} | ${(s.two / s.one).toFixed(2)}× |`);
console.log(
  `\n${(await import('node:os')).cpus().length} cores, load average ${(await import('node:os'))
    .loadavg()
    .map((x) => x.toFixed(1))
    .join(' ')} at the end`,
);
