// Finding dirty chunks near the end of a migration: a 1 TiB disk tracked at 64 KiB (16 Mi bits) with
// few dirty chunks left. Hierarchical find-next-set vs a linear scan of the flat bitmap, same bits.
// Run: npm run build && node bench/bitmap.bench.mjs
import '../dist/node/install.js'; // Node's codecs and worker pool, as the package's node condition loads them
import { Bench } from 'tinybench';
import { HierarchicalBitmap, linearFindNext } from '../dist/codec/hbitmap.js';

const SIZE = 2 ** 40 / 2 ** 16;
let seed = 42;
const rand = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32;

const rows = [];
for (const dirty of [10, 1000, 100000]) {
  const h = new HierarchicalBitmap(SIZE);
  const flat = new Uint32Array(SIZE / 32);
  for (let k = 0; k < dirty; k++) {
    const i = Math.floor(rand() * SIZE);
    h.set(i);
    flat[i >>> 5] |= 1 << (i & 31);
  }
  const walkH = () => {
    let n = 0;
    for (let i = h.findNext(0); i >= 0; i = h.findNext(i + 1)) n++;
    return n;
  };
  const walkL = () => {
    let n = 0;
    for (let i = linearFindNext(flat, SIZE, 0); i >= 0; i = linearFindNext(flat, SIZE, i + 1)) n++;
    return n;
  };
  if (walkH() !== walkL() || walkH() !== h.count) throw new Error('bitmaps disagree; refusing to time');
  const bench = new Bench({ time: 1000 });
  bench.add('linear', walkL).add('hierarchical', walkH);
  await bench.run();
  const [l, hh] = bench.tasks.map((t) => t.result.latency?.mean ?? t.result.mean);
  rows.push({ dirty: h.count, linear: l, hierarchical: hh });
}
console.log(`1 TiB disk, 64 KiB chunks (${SIZE} bits): time to visit every dirty chunk\n`);
console.log('| dirty chunks | linear scan | hierarchical | speed-up |');
console.log('|---:|---:|---:|---:|');
for (const r of rows) {
  console.log(`| ${r.dirty} | ${r.linear.toFixed(3)} ms | ${(r.hierarchical * 1000).toFixed(1)} µs | ${(r.linear / r.hierarchical).toFixed(0)}× |`);
}
