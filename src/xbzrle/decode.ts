import { MigstreamError } from '../codec/errors.js';

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
    let z = src[i++]!;
    if (z & 0x80) {
      const b = src[i++]!;
      if (b & 0x80) throw fail(base + i - 1, 'a ULEB128 of at most 2 bytes');
      z = (z & 0x7f) | (b << 7);
    }
    if (z === 0 && i > 1) throw fail(base + i - 1, 'a non-empty zero run');
    if (d + z > dlen) throw fail(base + i - 1, `a zero run within the page (run of ${z} at ${d})`);
    d += z;
    if (slen - i < 2) throw fail(base + i, 'a non-zero-run length and data');
    let n = src[i++]!;
    if (n & 0x80) {
      const b = src[i++]!;
      if (b & 0x80) throw fail(base + i - 1, 'a ULEB128 of at most 2 bytes');
      n = (n & 0x7f) | (b << 7);
    }
    if (n === 0) throw fail(base + i - 1, 'a non-empty data run');
    if (d + n > dlen || i + n > slen) throw fail(base + i - 1, `a data run within the page (run of ${n} at ${d})`);
    dst.set(src.subarray(i, i + n), d);
    i += n;
    d += n;
  }
  return d;
}

function fail(offset: number, expected: string): MigstreamError {
  return new MigstreamError('XBZRLE_DECODE', offset, `Failed to load XBZRLE page - decode error! expected ${expected}`);
}
