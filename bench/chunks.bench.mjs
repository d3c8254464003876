// Compressed block chunks (extension "chunk-compression"): a real filesystem image sent as a bulk
// block-migration pass in 64 KiB chunks, plain, LZ4 and zlib 1, in the main thread and on 1 and 2
// workers; wire bytes per disk byte, encode and decode MB/s; then the ratio per chunk size.
// Baselines measured in the same run on the same 64 KiB blocks: node:zlib deflateSync/inflateSync
// in-process, Python's C zlib binding, and the native `lz4` tool's benchmark mode.
// Every stream is decoded back and compared with the image before anything is reported.
//
//   npm run build && node bench/chunks.bench.mjs
//   DISK_MB=1024 node bench/chunks.bench.mjs     (default 512; the files take ~430 MB)
//
// The disk: an ext4 image made by `mke2fs -d` from a copy of /usr/bin and /usr/share/doc (binaries,
// text, already-compressed files and free space, like a system disk); without mke2fs, the fixture
// guests' RAM repeated. MB = 1e6 bytes of disk.
import '../dist/node/install.js'; // Node's codecs and worker pool, as the package's node condition loads them
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync, inflateSync } from 'node:zlib';
import { Bench } from 'tinybench';
import { loadFixture } from '../fixtures/qemu/lib.mjs';
import { StreamDecoder } from '../dist/stream/decoder.js';
import { SnapshotDiskSource } from '../dist/stream/disk-source.js';
import { encodeDumps } from '../dist/stream/dump-encoder.js';
import { decodePooled, encodeDumpsPooled } from '../dist/stream/pool/drivers.js';
import { ThreadPool } from '../dist/stream/pool/thread-pool.js';

const MB = 1e6;
const diskMiB = Number(process.env.DISK_MB ?? 512);
const ITER = Number(process.env.ITER ?? 3);
const tmp = mkdtempSync(join(tmpdir(), 'migstream-chunks-'));

function makeDisk() {
  const img = join(tmp, 'disk.img');
  const root = join(tmp, 'root');
  const cp = spawnSync('sh', ['-c', `mkdir -p ${root}/usr/share && cp -a /usr/bin ${root}/usr/ && cp -a /usr/share/doc ${root}/usr/share/`]);
  const mk = cp.status === 0 && spawnSync('mke2fs', ['-q', '-F', '-t', 'ext4', '-b', '4096', '-d', root, img, `${diskMiB}M`]);
  if (mk && mk.status !== 0) console.error(`mke2fs failed: ${mk.stderr}`);
  if (mk && mk.status === 0) return { bytes: new Uint8Array(readFileSync(img)), what: `ext4 image of /usr/bin + /usr/share/doc (mke2fs -d), ${diskMiB} MiB` };
  const ram = loadFixture('plain').ram;
  const out = new Uint8Array(diskMiB << 20);
  for (let at = 0; at < out.length; at += ram.length) out.set(ram.subarray(0, Math.min(ram.length, out.length - at)), at);
  return { bytes: out, what: `the plain fixture's RAM repeated to ${diskMiB} MiB (mke2fs not found)` };
}

const disk = makeDisk();
rmSync(join(tmp, 'root'), { recursive: true, force: true });
const size = disk.bytes.length;
const ram = [{ idstr: 'pc.ram', dumps: [new Uint8Array(4096)] }];
const diskSource = () => [new SnapshotDiskSource('vd0', [disk.bytes])];

/** Encodes the bulk pass; returns the stream. */
async function encode(chunk, codec, workers) {
  const parts = [];
  let n = 0;
  const sink = (c) => {
    parts.push(c.slice());
    n += c.length;
  };
  const options = { disks: diskSource(), blockChunkSize: chunk, chunkCompress: codec ? { codec } : undefined };
  if (workers === 0) encodeDumps(ram, sink, options);
  else await encodeDumpsPooled(ram, sink, { ...options, pool: pools[workers] });
  return Buffer.concat(parts);
}

const ZERO = new Uint8Array(1 << 20);

/** Decodes a stream, comparing every chunk with the image; returns the bytes applied. */
function checker() {
  let applied = 0;
  const handle = (ev) => {
    if (ev.type !== 'block-chunk') return;
    const at = ev.sector * 512;
    const want = disk.bytes.subarray(at, at + ev.length);
    if (Buffer.compare(ev.zero ? ZERO.subarray(0, ev.length) : ev.data, want) !== 0) throw new Error(`chunk at ${at} differs`);
    applied += ev.length;
  };
  return { handle, done: () => applied };
}

function decodeInline(stream) {
  const c = checker();
  const d = new StreamDecoder(c.handle);
  d.push(stream);
  d.end();
  return c.done();
}

async function decodeOnPool(stream, workers) {
  const c = checker();
  await decodePooled(stream, c.handle, { pool: pools[workers] });
  return c.done();
}

const pools = { 1: new ThreadPool(1), 2: new ThreadPool(2) };
const best = async (fn) => {
  const bench = new Bench({ iterations: ITER, time: 0, warmupIterations: 0, warmupTime: 0 });
  bench.add('x', fn);
  await bench.run();
  return bench.tasks[0].result.latency.min / 1000;
};

// ---- settings at 64 KiB
const CHUNK = 64 * 1024;
const rows = [];
for (const codec of [undefined, 'lz4', 'zlib']) {
  for (const workers of codec ? [0, 1, 2] : [0]) {
    const stream = await encode(CHUNK, codec, workers);
    if (decodeInline(stream) !== size) throw new Error('decode did not cover the disk');
    const enc = await best(() => encode(CHUNK, codec, workers));
    const dec = workers === 0 ? await best(() => decodeInline(stream)) : await best(() => decodeOnPool(stream, workers));
    if (workers > 0 && (await decodeOnPool(stream, workers)) !== size) throw new Error('pooled decode did not cover the disk');
    rows.push({
      label: codec ? `${codec === 'zlib' ? 'zlib 1' : 'LZ4 acc 1'}` : 'plain (zero chunks only)',
      workers,
      wire: stream.length / size,
      enc: size / MB / enc,
      dec: size / MB / dec,
    });
  }
}

// ---- baselines on the same non-zero 64 KiB blocks
const blocks = [];
for (let at = 0; at < size; at += CHUNK) {
  const b = disk.bytes.subarray(at, Math.min(size, at + CHUNK));
  if (b.some((x) => x !== 0)) blocks.push(b);
}
const blockBytes = blocks.reduce((n, b) => n + b.length, 0);
const zlibBlocks = blocks.map((b) => deflateSync(b, { level: 1 }));
const nodeZ = {
  enc: blockBytes / MB / (await best(() => blocks.forEach((b) => deflateSync(b, { level: 1 })))),
  dec: blockBytes / MB / (await best(() => zlibBlocks.forEach((c) => inflateSync(c)))),
  ratio: zlibBlocks.reduce((n, c) => n + c.length, 0) / blockBytes,
};
const blockFile = join(tmp, 'blocks.bin');
writeFileSync(blockFile, Buffer.concat(blocks));
const py = spawnSync(
  'python3',
  [
    '-c',
    `import zlib, time, sys
d = open(sys.argv[1], 'rb').read(); B = 65536
bl = [d[i:i+B] for i in range(0, len(d), B)]
def best(f):
  b = 1e9
  for _ in range(3):
    t = time.perf_counter(); f(); b = min(b, time.perf_counter() - t)
  return b
c = [zlib.compress(x, 1) for x in bl]
print(len(d) / 1e6 / best(lambda: [zlib.compress(x, 1) for x in bl]), len(d) / 1e6 / best(lambda: [zlib.decompress(x) for x in c]), sum(map(len, c)) / len(d), zlib.ZLIB_RUNTIME_VERSION)`,
    blockFile,
  ],
  { encoding: 'utf8' },
);
const pyZ = py.status === 0 ? py.stdout.trim().split(/\s+/) : undefined;
const lz4 = spawnSync('lz4', ['-b1', '-i3', '-B65536', blockFile], { encoding: 'utf8' });
const m = [...`${lz4.stdout}${lz4.stderr}`.matchAll(/(\d+) ->\s+(\d+) \(([\d.]+)\),\s*([\d.]+) MB\/s ,\s*([\d.]+) MB\/s/g)].at(-1);
const lz4Version = spawnSync('lz4', ['--version'], { encoding: 'utf8' }).stdout?.match(/v[\d.]+/)?.[0];

// ---- ratio per chunk size (main thread)
const ratios = [];
for (const chunk of [4096, 65536, 1 << 20]) {
  const row = { chunk };
  for (const codec of [undefined, 'lz4', 'zlib']) row[codec ?? 'plain'] = (await encode(chunk, codec, 0)).length / size;
  ratios.push(row);
}
await pools[1].close();
await pools[2].close();
rmSync(tmp, { recursive: true, force: true });

const f = (x) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
console.log(`disk: ${disk.what}; ${blocks.length} of ${Math.ceil(size / CHUNK)} 64 KiB chunks non-zero; best of ${ITER} runs\n`);
console.log('| chunks of 64 KiB | workers | wire / disk | encode MB/s | decode MB/s |\n|---|---:|---:|---:|---:|');
for (const r of rows) console.log(`| ${r.label} | ${r.workers || 'main thread'} | ${(r.wire * 100).toFixed(1)}% | ${f(r.enc)} | ${f(r.dec)} |`);
console.log('\nbaselines on the non-zero 64 KiB blocks alone (no zero chunks, no records):\n');
console.log('| baseline | compressed / input | compress MB/s | decompress MB/s |\n|---|---:|---:|---:|');
console.log(`| node:zlib deflateSync level 1, in-process | ${(nodeZ.ratio * 100).toFixed(1)}% | ${f(nodeZ.enc)} | ${f(nodeZ.dec)} |`);
if (pyZ)
  console.log(`| native zlib ${pyZ[3]} level 1 (Python's C binding) | ${(Number(pyZ[2]) * 100).toFixed(1)}% | ${f(Number(pyZ[0]))} | ${f(Number(pyZ[1]))} |`);
if (m)
  console.log(
    `| native lz4 ${lz4Version} -1 (lz4 -b1 -B65536) | ${((Number(m[2]) / Number(m[1])) * 100).toFixed(1)}% | ${f(Number(m[4]))} | ${f(Number(m[5]))} |`,
  );
console.log('\nwire / disk by chunk size (bulk pass, main thread):\n');
console.log('| chunk size | plain | LZ4 | zlib 1 |\n|---:|---:|---:|---:|');
for (const r of ratios)
  console.log(
    `| ${r.chunk >= 1 << 20 ? '1 MiB' : `${r.chunk / 1024} KiB`} | ${(r.plain * 100).toFixed(1)}% | ${(r.lz4 * 100).toFixed(1)}% | ${(r.zlib * 100).toFixed(1)}% |`,
  );
