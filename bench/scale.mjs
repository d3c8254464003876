// Scale: `extract` and `transcode` of a stream for a large guest must run in bounded memory.
// Synthesises a stream for an N GiB guest from the captured dump series (each 256 MiB region is a
// dump, perturbed so no two regions are equal), then runs the CLI on it under /usr/bin/time and
// reports peak RSS and throughput.
// Run: npm run build && node bench/scale.mjs [--gib 8] [--keep]
import '../dist/node/install.js'; // Node's codecs and worker pool, as the package's node condition loads them
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StreamEncoder } from '../dist/stream/encoder.js';
import { isZeroPage } from '../dist/codec/zero.js';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const GIB = Number(arg('--gib', '8'));
const PAGE = 4096;

/** The page source: the captured dumps when present, else a deterministic synthetic mix. */
async function regions() {
  const lib = await import('../fixtures/dumps/lib.mjs').catch(() => undefined);
  if (lib) {
    try {
      const { files } = await lib.ensureDumps({ quiet: true });
      return { name: `${files.length} captured dumps`, files };
    } catch (e) {
      console.error(`dump series unavailable (${e.message}); using synthetic pages`);
    }
  }
  return { name: 'synthetic pages', files: [] };
}

function synthRegion(k) {
  const r = new Uint8Array(256 << 20);
  let x = 0x9e3779b9 ^ k;
  for (let p = 0; p < r.length / PAGE; p++) {
    const kind = p % 7;
    if (kind < 3) continue; // zero
    const page = r.subarray(p * PAGE, (p + 1) * PAGE);
    for (let i = 0; i < PAGE; i += 4) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      page[i] = kind === 6 ? x : i >> 6;
    }
  }
  return r;
}

export async function synthesize(path, gib) {
  const src = await regions();
  const fd = openSync(path, 'w');
  const enc = new StreamEncoder((c) => writeSync(fd, c), { chunkSize: 1 << 20 });
  const total = gib * 2 ** 30;
  const section = { sectionId: 2, idstr: 'ram', instanceId: 0, versionId: 4 };
  enc.header().configuration('pc-i440fx-7.2');
  enc
    .sectionStart(section)
    .memSize([{ idstr: 'pc.ram', length: total }])
    .ramEos()
    .footer(2);
  const regionBytes = 256 << 20;
  // Iteration 0: every page; iteration 1: re-send 1% of the non-zero pages with a byte changed.
  for (const iteration of [0, 1]) {
    enc.sectionPart(2);
    for (let k = 0; k * regionBytes < total; k++) {
      const region = src.files.length ? new Uint8Array(readFileSync(src.files[k % src.files.length])) : synthRegion(k);
      for (let off = 0; off < regionBytes; off += PAGE) {
        const page = region.subarray(off, off + PAGE);
        const addr = k * regionBytes + off;
        if (isZeroPage(page)) {
          if (iteration === 0) enc.zeroPage('pc.ram', addr);
          continue;
        }
        page[(k * 131) % PAGE] ^= 0x5a; // perturb: no two regions equal
        if (iteration === 0) enc.page('pc.ram', addr, page);
        else if ((off / PAGE) % 100 === k % 100) {
          page[7] ^= 0xff;
          enc.page('pc.ram', addr, page);
        }
      }
    }
    enc.ramEos().footer(2);
  }
  enc.sectionEnd(2).ramEos().footer(2);
  enc.raw(Uint8Array.of(0));
  enc.flush();
  closeSync(fd);
  return src.name;
}

function measure(label, args) {
  const t = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', '%M', process.execPath, 'dist/cli/main.js', ...args], { encoding: 'utf8' });
  const s = Number(process.hrtime.bigint() - t) / 1e9;
  if (r.status !== 0) throw new Error(`${label} failed: ${r.stderr}`);
  const rssKiB = Number(r.stderr.trim().split('\n').at(-1));
  return { label, seconds: s, rssMiB: rssKiB / 1024 };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const dir = mkdtempSync(join(tmpdir(), 'migstream-scale-'));
  try {
    const stream = join(dir, 'big.stream');
    const t0 = Date.now();
    const source = await synthesize(stream, GIB);
    const bytes = statSync(stream).size;
    console.log(`synthesised a ${GIB} GiB guest from ${source}: ${bytes} bytes of stream in ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
    const rows = [
      measure('extract', ['extract', stream, '--out', join(dir, 'x')]),
      measure('transcode', ['transcode', stream, join(dir, 'out.stream')]),
      measure('verify', ['verify', join(dir, 'out.stream'), '--against', join(dir, 'x')]),
    ];
    console.log('| command | time | stream MB/s | peak RSS |');
    console.log('|---|---:|---:|---:|');
    for (const r of rows) console.log(`| ${r.label} | ${r.seconds.toFixed(1)} s | ${(bytes / 1e6 / r.seconds).toFixed(0)} | ${r.rssMiB.toFixed(0)} MiB |`);
  } finally {
    if (!process.argv.includes('--keep')) rmSync(dir, { recursive: true, force: true });
  }
}
