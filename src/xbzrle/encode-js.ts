import { MAX_RUN, putUleb } from './uleb.js';
import { DataViewCache } from './views.js';

// Portable XBZRLE encoder for engines without WebAssembly SIMD, with the same
// contract as xbzrleEncode. It compares 4 bytes per step through DataViews
// (unaligned loads are fine, so no alignment prologue) and finds the run end
// inside a word with bit tricks instead of a byte loop.
const oldViews = new DataViewCache();
const newViews = new DataViewCache();
const dstViews = new DataViewCache();

/** Index of the lowest set bit (x !== 0). */
function ctz(x: number): number {
  return 31 - Math.clz32(x & -x);
}

export function checkPageLengths(oldPage: Uint8Array, newPage: Uint8Array): void {
  if (oldPage.length !== newPage.length) {
    throw new RangeError(`XBZRLE: pages differ in length (${oldPage.length} vs ${newPage.length})`);
  }
}

/** xbzrleEncode without WebAssembly: same results, slower. */
export function xbzrleEncodeJs(oldPage: Uint8Array, newPage: Uint8Array, dst: Uint8Array): number {
  checkPageLengths(oldPage, newPage);
  const slen = newPage.length;
  const dlen = dst.length;
  const a = oldViews.of(oldPage);
  const b = newViews.of(newPage);
  const ao = oldPage.byteOffset;
  const bo = newPage.byteOffset;
  const lastWord = slen - 4;
  let i = 0;
  let d = 0;
  while (i < slen) {
    if (d + 2 > dlen) return -1;
    let start = i;

    // Zero run: 16 bytes per step while everything matches, then words, then the tail.
    while (i <= slen - 16) {
      const x =
        (a.getInt32(ao + i, true) ^ b.getInt32(bo + i, true)) |
        (a.getInt32(ao + i + 4, true) ^ b.getInt32(bo + i + 4, true)) |
        (a.getInt32(ao + i + 8, true) ^ b.getInt32(bo + i + 8, true)) |
        (a.getInt32(ao + i + 12, true) ^ b.getInt32(bo + i + 12, true));
      if (x !== 0) break;
      i += 16;
    }
    for (;;) {
      if (i > lastWord) {
        while (i < slen && oldPage[i] === newPage[i]) i++;
        break;
      }
      const x = a.getInt32(ao + i, true) ^ b.getInt32(bo + i, true);
      if (x !== 0) {
        i += ctz(x) >>> 3; // little-endian: the lowest non-zero byte is the first difference
        break;
      }
      i += 4;
    }
    if (i === slen) return d; // trailing zero run dropped; 0 for an unchanged page
    let run = i - start;
    if (run > MAX_RUN) return -1;
    d += putUleb(dst, d, run);
    if (d + 2 > dlen) return -1;
    start = i;

    // Non-zero run: the lowest flagged byte of the has-a-zero-byte test is the first equal byte.
    for (;;) {
      if (i > lastWord) {
        while (i < slen && oldPage[i] !== newPage[i]) i++;
        break;
      }
      const x = a.getInt32(ao + i, true) ^ b.getInt32(bo + i, true);
      const zeroBytes = (x - 0x01010101) & ~x & 0x80808080;
      if (zeroBytes !== 0) {
        i += ctz(zeroBytes) >>> 3;
        break;
      }
      i += 4;
    }
    run = i - start;
    if (run > MAX_RUN) return -1;
    d += putUleb(dst, d, run);
    if (d + run > dlen) return -1;
    copy(newPage, b, bo + start, dst, d, run);
    d += run;
  }
  return d;
}

/** Copies src[from - src.byteOffset ...] into dst[to, to + n): words for long runs, bytes for short. */
function copy(src: Uint8Array, sv: DataView, from: number, dst: Uint8Array, to: number, n: number): void {
  let k = 0;
  if (n >= 16) {
    const dv = dstViews.of(dst);
    const dOff = dst.byteOffset + to;
    for (; k <= n - 4; k += 4) dv.setInt32(dOff + k, sv.getInt32(from + k, true), true);
  }
  const s = from - src.byteOffset;
  for (; k < n; k++) dst[to + k] = src[s + k]!;
}
