import { MigstreamError } from '../codec/errors.js';
import { DataViewCache } from './views.js';

const srcViews = new DataViewCache();
const dstViews = new DataViewCache();

/** Runs at least this long are copied with a native memcpy (dst.set); the view it needs costs about as much as copying this many bytes by words. */
const NATIVE_COPY_MIN = 256;

/**
 * Applies an XBZRLE delta (QEMU migration/xbzrle.c grammar) to `dst` in place.
 * Rejects exactly what QEMU's xbzrle_decode_buffer rejects. Returns the number
 * of destination bytes covered. `base` is the stream offset of `src[0]`, used
 * in errors.
 */
export function xbzrleDecode(src: Uint8Array, dst: Uint8Array, base = 0): number {
  const slen = src.length;
  const dlen = dst.length;
  let i = 0;
  let d = 0;
  while (i < slen) {
    // zrun: QEMU asks for 2 bytes here even though a 1-byte ULEB would do.
    if (slen - i < 2) throw fail(base + i, 'a zero-run length (at least 2 bytes left)');
    let z = src[i]!;
    if (z < 0x80) {
      if (z === 0 && i !== 0) throw fail(base + i, 'a non-empty zero run');
      i += 1;
    } else {
      const b = src[i + 1]!;
      if (b >= 0x80) throw fail(base + i + 1, 'a ULEB128 of at most 2 bytes');
      z = (z & 0x7f) | (b << 7);
      if (z === 0 && i !== 0) throw fail(base + i + 1, 'a non-empty zero run');
      i += 2;
    }
    if (d + z > dlen) throw fail(base + i - 1, `a zero run within the page (run of ${z} at ${d})`);
    d += z;

    if (slen - i < 2) throw fail(base + i, 'a non-zero-run length and data');
    let n = src[i]!;
    if (n < 0x80) {
      i += 1;
    } else {
      const b = src[i + 1]!;
      if (b >= 0x80) throw fail(base + i + 1, 'a ULEB128 of at most 2 bytes');
      n = (n & 0x7f) | (b << 7);
      i += 2;
    }
    if (n === 0) throw fail(base + i - 1, 'a non-empty data run');
    if (d + n > dlen || i + n > slen) throw fail(base + i - 1, `a data run within the page (run of ${n} at ${d})`);
    if (n < 16) {
      for (let k = 0; k < n; k++) dst[d + k] = src[i + k]!;
    } else if (n < NATIVE_COPY_MIN) {
      copyWords(src, i, dst, d, n);
    } else {
      dst.set(src.subarray(i, i + n), d);
    }
    i += n;
    d += n;
  }
  return d;
}

/** Copies 4 bytes per step through DataViews (unaligned is fine), then the tail by bytes. */
function copyWords(src: Uint8Array, from: number, dst: Uint8Array, to: number, n: number): void {
  const sv = srcViews.of(src);
  const dv = dstViews.of(dst);
  const s = src.byteOffset + from;
  const t = dst.byteOffset + to;
  let k = 0;
  for (; k <= n - 4; k += 4) dv.setInt32(t + k, sv.getInt32(s + k, true), true);
  for (; k < n; k++) dst[to + k] = src[from + k]!;
}

function fail(offset: number, expected: string): MigstreamError {
  return new MigstreamError('XBZRLE_DECODE', offset, `Failed to load XBZRLE page - decode error! expected ${expected}`);
}
