/**
 * XBZRLE run lengths: ULEB128 limited to two bytes (QEMU util/cutils.c
 * uleb128_encode_small / uleb128_decode_small).
 */

/** The largest run a 2-byte ULEB128 can hold; QEMU asserts on anything longer. */
export const MAX_RUN = 0x3fff;

/** Writes `n` (0..MAX_RUN) at `at`; returns the number of bytes written (1 or 2). */
export function putUleb(out: Uint8Array, at: number, n: number): number {
  if (n < 0x80) {
    out[at] = n;
    return 1;
  }
  out[at] = n | 0x80;
  out[at + 1] = n >>> 7;
  return 2;
}

/**
 * Reads a run length at `at` (the caller guarantees two readable bytes, as
 * QEMU does). Returns the value in the low 14 bits and the byte count in bits
 * 16+, or -1 for a 3-byte form, which QEMU rejects.
 */
export function getUleb(src: Uint8Array, at: number): number {
  const b0 = src[at]!;
  if (b0 < 0x80) return b0 | (1 << 16);
  const b1 = src[at + 1]!;
  if (b1 >= 0x80) return -1;
  return (b0 & 0x7f) | (b1 << 7) | (2 << 16);
}
