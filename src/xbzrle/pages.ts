import { xbzrleDecode } from './decode.js';
import { xbzrleEncode } from './encode.js';

/**
 * The symmetric pair over whole pages: `encodePage(old, next)` gives the
 * delta QEMU would send (undefined on overflow: QEMU sends the page whole),
 * and `decodePage(old, delta)` gives `next` back.
 * xbzrleEncode / xbzrleDecode are the allocation-free forms underneath.
 */
export function encodePage(oldPage: Uint8Array, newPage: Uint8Array): Uint8Array | undefined {
  const dst = new Uint8Array(newPage.length);
  const n = xbzrleEncode(oldPage, newPage, dst);
  return n < 0 ? undefined : dst.slice(0, n);
}

/** Applies `delta` to a copy of `oldPage`; throws MigstreamError (offsets within the delta) where QEMU rejects it. */
export function decodePage(oldPage: Uint8Array, delta: Uint8Array): Uint8Array {
  const page = oldPage.slice();
  xbzrleDecode(delta, page);
  return page;
}
