import { instantiateKernel, KERNEL_OUT_SLACK, KERNEL_PAGE_SLACK } from './encode-kernel.js';
import { DataViewCache } from './views.js';

export type Encoder = (oldPage: Uint8Array, newPage: Uint8Array, dst: Uint8Array) => number;

const roundUp64 = (n: number) => (n + 63) & ~63;
const OUT_STEP = 128;

/**
 * Wraps the SIMD kernel in xbzrleEncode's contract: copies both pages into the
 * module's memory (two native memcpys, cheaper than scanning them in JS) and
 * copies the encoding out. Returns null where WebAssembly SIMD is missing.
 */
export function createWasmEncoder(): Encoder | null {
  const kernel = instantiateKernel();
  if (kernel === null) return null;
  const { encode, memory } = kernel;
  let mem = new Uint8Array(memory.buffer);
  let memView = new DataView(memory.buffer);
  const dstViews = new DataViewCache();
  let slen = -1;
  let dlen = -1;
  let newAt = 0;
  let outAt = 0;
  // Views of the output area, OUT_STEP, 2 * OUT_STEP, ... bytes long (the last one
  // dlen): copying an encoding out moves at most OUT_STEP extra bytes, allocating nothing.
  let outViews: Uint8Array[] = [];

  // Memory: old page at 0, new page at newAt, output at outAt, each with its slack.
  function layout(pageSize: number, outSize: number): void {
    newAt = roundUp64(pageSize + KERNEL_PAGE_SLACK);
    outAt = newAt + newAt;
    const needed = outAt + outSize + KERNEL_OUT_SLACK;
    const have = memory.buffer.byteLength;
    if (needed > have) memory.grow(Math.ceil((needed - have) / 65536));
    mem = new Uint8Array(memory.buffer);
    memView = new DataView(memory.buffer);
    // The bytes after each page must compare equal (see encode-kernel.ts).
    mem.fill(0, pageSize, newAt);
    mem.fill(0, newAt + pageSize, outAt);
    outViews = [];
    for (let n = OUT_STEP; n < outSize + OUT_STEP; n += OUT_STEP) {
      outViews.push(mem.subarray(outAt, outAt + Math.min(n, outSize)));
    }
    slen = pageSize;
    dlen = outSize;
  }

  return (oldPage, newPage, dst) => {
    if (newPage.length !== slen || dst.length !== dlen) layout(newPage.length, dst.length);
    mem.set(oldPage, 0);
    mem.set(newPage, newAt);
    const d = encode(0, newAt, outAt, slen, dlen);
    // Copy out: short encodings by bytes, medium ones by words, long ones natively.
    if (d <= 16) {
      for (let k = 0; k < d; k++) dst[k] = mem[outAt + k]!;
    } else if (d <= OUT_STEP) {
      const dv = dstViews.of(dst);
      const to = dst.byteOffset;
      for (let k = 0; k < d - 4; k += 4) dv.setInt32(to + k, memView.getInt32(outAt + k, true), true);
      dv.setInt32(to + d - 4, memView.getInt32(outAt + d - 4, true), true);
    } else {
      dst.set(outViews[((d - 1) / OUT_STEP) | 0]!);
    }
    return d;
  };
}
