import { createWasmEncoder, type Encoder } from './encode-wasm.js';
import { checkPageLengths, xbzrleEncodeJs } from './encode-js.js';

let encoder: Encoder | undefined;

/**
 * XBZRLE-encodes `newPage` against `oldPage` into `dst`, exactly as QEMU's
 * generic xbzrle_encode_buffer(old, new, slen, dst, dlen) does with
 * `dlen = dst.length` (normally the page size):
 *
 * - returns the encoded length: alternating ULEB128 runs, starting with an
 *   unchanged run (possibly 0), all runs maximal, the trailing unchanged run
 *   dropped;
 * - returns 0 for an identical page;
 * - returns -1 ("overflow": send a normal page) where QEMU does, with its check
 *   order: `d + 2 > dlen` at the top of each run pair and after the zero-run
 *   length, `d + nzrun > dlen` after the data-run length. So an encoding of
 *   exactly dlen bytes is possible, and -1 can come with only a trailing
 *   unchanged run left.
 *
 * A run longer than 0x3FFF (pages over 16 KiB) also gives -1: QEMU asserts
 * there, and no decoder accepts a longer run. Bytes of `dst` past the returned
 * length are scratch. Pages must be the same length; any length and alignment
 * works (QEMU requires multiples of 8). Allocates nothing per call once warm:
 * the few views it needs are cached per buffer.
 *
 * Runs on a WebAssembly SIMD kernel (encode-kernel.ts) where the engine has
 * one, else on xbzrleEncodeJs; both give identical results.
 */
export function xbzrleEncode(oldPage: Uint8Array, newPage: Uint8Array, dst: Uint8Array): number {
  checkPageLengths(oldPage, newPage);
  encoder ??= createWasmEncoder() ?? xbzrleEncodeJs;
  return encoder(oldPage, newPage, dst);
}
