// zstd for multifd channels, measured: which encoder (and decoder) to use for QEMU 7.2's
// `multifd-compression zstd` form. Packets of 128 guest pages from the cached 512 MiB Linux guest
// stream (bench/line-rate.mjs builds it; zero pages left out as QEMU does), each encoder one stream
// per channel flushed after every packet (ZSTD_e_flush / Z_SYNC_FLUSH), as a channel sends them.
// Usage: npm run build && node bench/multifd-zstd.mjs [--mib 128] [--stream FILE]
// SPDX-License-Identifier: MIT
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Decompress } from 'fzstd';
import '../dist/node/install.js';
import { StreamDecoder } from '../dist/stream/decoder.js';
import { channelDeflater } from '../dist/multifd/channel-codecs.js';
import { nativeZstdDeflater, nativeZstdInflater, nativeZstdVersion } from '../dist/multifd/node-zstd.js';
import { ZstdRawDeflater } from '../dist/multifd/zstd-raw.js';

const arg = (n, d) => (process.argv.includes(n) ? process.argv[process.argv.indexOf(n) + 1] : d);
const mib = Number(arg('--mib', 128));
const cacheDir = join(import.meta.dirname, '..', '.cache', 'line-rate');
const file = arg(
  '--stream',
  join(
    cacheDir,
    readdirSync(cacheDir).find((f) => f.endsWith('.stream')),
  ),
);

// 128-page packets of non-zero pages
const packets = [];
let cur = [];
const dec = new StreamDecoder((ev) => {
  if (ev.type !== 'page' || ev.kind === 'zero' || packets.length * 128 * 4096 >= mib * 2 ** 20) return;
  cur.push(ev.data.slice());
  if (cur.length === 128) {
    packets.push(Buffer.concat(cur));
    cur = [];
  }
});
const bytes = readFileSync(file);
for (let at = 0; at < bytes.length && packets.length * 128 * 4096 < mib * 2 ** 20; at += 1 << 20) dec.push(bytes.subarray(at, at + (1 << 20)));
const raw = packets.reduce((n, p) => n + p.length, 0);
console.log(
  `${packets.length} packets, ${(raw / 2 ** 20).toFixed(0)} MiB of pages; libzstd ${nativeZstdVersion ?? 'not installed'}; load ${(await import('node:os'))
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}`,
);

const encoders = [
  ['migstream raw/RLE zstd writer', () => new ZstdRawDeflater()],
  ...(nativeZstdVersion ? [1, 3, 6].map((l) => [`zstd-napi (libzstd) level ${l}`, () => nativeZstdDeflater(l)]) : []),
  ['node:zlib deflate level 1 (QEMU zlib)', () => channelDeflater('zlib', 1)],
  ['node:zlib brotli quality 5', () => channelDeflater('brotli', 5)],
];
let hpcc;
try {
  const { Zstd } = await import('@hpcc-js/wasm-zstd'); // not a dependency: `npm i --no-save @hpcc-js/wasm-zstd` to include it
  hpcc = await Zstd.load();
  encoders.push([
    '@hpcc-js/wasm-zstd level 1 (wasm)',
    () => {
      hpcc.reset();
      hpcc.setCompressionLevel(1);
      return { deflate: (p) => hpcc.compressChunk(p) };
    },
  ]);
} catch {}

const pad = (s, n) => String(s).padStart(n);
console.log(`${'encoder'.padEnd(40)} ${pad('bytes', 11)} ${pad('ratio', 6)} ${pad('enc MiB/s', 9)} ${pad('fzstd dec', 9)} ${pad('native dec', 10)}`);
for (const [name, make] of encoders) {
  const d = make();
  const out = [];
  const t0 = performance.now();
  for (const p of packets) out.push(d.deflate(p));
  const enc = (performance.now() - t0) / 1000;
  const total = out.reduce((n, o) => n + o.length, 0);
  let fz = '';
  let nat = '';
  if (!name.includes('node:zlib')) {
    // every packet must decode alone, in order, to its pages
    let got = 0;
    const z = new Decompress((c) => (got += c.length));
    const t1 = performance.now();
    out.forEach((o, i) => {
      z.push(o, false);
      if (got !== (i + 1) * packets[0].length) throw new Error(`${name}: packet ${i} did not flush`);
    });
    fz = (raw / 2 ** 20 / ((performance.now() - t1) / 1000)).toFixed(0);
    if (nativeZstdVersion) {
      const n = nativeZstdInflater();
      const t2 = performance.now();
      out.forEach((o, i) => {
        if (Buffer.compare(n.inflate(o, packets[i].length), packets[i]) !== 0) throw new Error(`${name}: packet ${i} differs`);
      });
      nat = (raw / 2 ** 20 / ((performance.now() - t2) / 1000)).toFixed(0);
    }
  }
  console.log(
    `${name.padEnd(40)} ${pad(total, 11)} ${pad((raw / total).toFixed(2), 6)} ${pad((raw / 2 ** 20 / enc).toFixed(0), 9)} ${pad(fz, 9)} ${pad(nat, 10)}`,
  );
}
