import { MigstreamError } from '../codec/errors.js';

// Runs this long are copied with dst.set(src.subarray()): a native memcpy, but the
// view costs about as much as a byte loop over this many bytes (measured: ~100 ns).
// Copying 4-byte words through DataViews only won for 32..47 bytes, by ~7%.
const NATIVE_COPY_MIN = 32;

/**
 * Applies an XBZRLE delta (QEMU migration/xbzrle.c grammar) to `dst` in place.
 * Rejects exactly what QEMU's xbzrle_decode_buffer rejects. Returns the number
 * of destination bytes covered. `base` is the stream offset of `src[0]`, used
 * in errors. Runs of NATIVE_COPY_MIN+ bytes each allocate one short-lived view
 * (JS has no allocation-free native copy between two buffers); shorter ones
 * allocate nothing.
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
    if (n === 1) {
      dst[d] = src[i]!; // the commonest run by far where changes are scattered
    } else if (n < NATIVE_COPY_MIN) {
      for (let k = 0; k < n; k++) dst[d + k] = src[i + k]!;
    } else {
      dst.set(src.subarray(i, i + n), d);
    }
    i += n;
    d += n;
  }
  return d;
}

function fail(offset: number, expected: string): MigstreamError {
  return new MigstreamError('XBZRLE_DECODE', offset, `Failed to load XBZRLE page - decode error! expected ${expected}`);
}
