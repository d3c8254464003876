// Block-migration dirty amplification: bytes sent per byte the guest wrote, for random writes of
// 4 KiB … 256 KiB at a fixed rate, with QEMU's fixed 1 MiB chunks and our 64 KiB and 4 KiB chunks.
// The real BlockSender and StreamEncoder write the records; a sink counts their bytes.
// This is a model, not a measured write log: writes are random and, in the first table, aligned to
// their own size, so a chunk size that divides the write size gives 1.0× by construction. The second
// table places the same writes at any 512-byte sector, as an unaligned guest I/O pattern would.
// Run: npm run build && node bench/amplification.bench.mjs
import '../dist/node/install.js'; // Node's codecs and worker pool, as the package's node condition loads them
import { BlockSender } from '../dist/stream/block-sender.js';
import { StreamEncoder } from '../dist/stream/encoder.js';

const DISK = 64 * 2 ** 30; // a 64 GiB disk: random writes rarely share a chunk, as on a real database volume
const RATE = 2e6; // guest writes 2 MB/s
const ITERATION_S = 1; // one dirty pass per second
const ITERATIONS = 10;

/** A disk whose content is never zero (so no chunk is sent as a cheap zero chunk) and whose writes we script. */
class RandomWriteDisk {
  constructor(writeSize, seed, align = writeSize) {
    this.align = align;
    this.device = 'ide0-hd1';
    this.size = DISK;
    this.iterations = ITERATIONS;
    this.writeSize = writeSize;
    this.seed = seed;
  }
  rand() {
    this.seed = (Math.imul(this.seed, 1664525) + 1013904223) >>> 0;
    return this.seed / 2 ** 32;
  }
  read(_offset, out) {
    out.fill(0xa5);
  }
  advance() {
    const count = Math.round((RATE * ITERATION_S) / this.writeSize);
    const slots = (DISK - this.writeSize) / this.align + 1;
    return Array.from({ length: count }, () => ({ offset: Math.floor(this.rand() * slots) * this.align, length: this.writeSize }));
  }
}

const chunkSizes = [
  ['QEMU 1 MiB', undefined],
  ['64 KiB', 64 * 1024],
  ['4 KiB', 4096],
];
function table(align) {
  const rows = [];
  for (const write of [4096, 8192, 16384, 65536, 262144]) {
    const row = { write };
    for (const [label, chunkSize] of chunkSizes) {
      let bytes = 0;
      const enc = new StreamEncoder((c) => (bytes += c.length));
      const disk = new RandomWriteDisk(write, 1234, align ?? write);
      const sender = new BlockSender(enc, [disk], { chunkSize });
      let written = 0;
      for (let i = 0; i < ITERATIONS; i++) {
        const extents = disk.advance();
        written += extents.reduce((n, e) => n + e.length, 0);
        sender.markDirty(0, extents);
        sender.sendDirty();
      }
      enc.flush();
      row[label] = bytes / written;
    }
    rows.push(row);
  }
  return rows;
}

console.log(`random writes at ${RATE / 1e6} MB/s on a ${DISK / 2 ** 30} GiB disk, one dirty pass per ${ITERATION_S} s, ${ITERATIONS} passes`);
console.log('bytes sent per byte written (record headers included)');
for (const [title, align] of [
  ['writes aligned to their size (1.0× where the chunk divides the write: by construction)', undefined],
  ['writes at any 512-byte sector', 512],
]) {
  console.log(`\n${title}\n`);
  console.log(`| write size | ${chunkSizes.map(([l]) => l).join(' | ')} |`);
  console.log(`|---:|${chunkSizes.map(() => '---:').join('|')}|`);
  for (const r of table(align)) console.log(`| ${r.write / 1024} KiB | ${chunkSizes.map(([l]) => `${r[l].toFixed(1)}×`).join(' | ')} |`);
}
