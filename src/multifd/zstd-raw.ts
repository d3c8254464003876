import type { ChannelDeflater } from './channel-codecs.js';
import { concatBytes } from '../codec/concat.js';

/** zstd frame magic, little-endian on the wire. */
const ZSTD_MAGIC = 0xfd2fb528;
const MAX_BLOCK = 128 * 1024;

/**
 * A zstd writer with no entropy stage: one frame per channel that never ends
 * (as QEMU's ZSTD_e_flush leaves it), written as Raw blocks, and RLE blocks for
 * runs of one byte (zero pages). Every zstd decoder (QEMU's libzstd, fzstd)
 * reads it; it shrinks only uniform pages. Used where no zstd compressor is
 * available (see docs/multifd.md: Node 20 has none, native bindings need a
 * build at install time); between two relays migstream uses its own codecs.
 */
export class ZstdRawDeflater implements ChannelDeflater {
  private started = false;

  deflate(pages: Uint8Array): Uint8Array {
    const parts: Uint8Array[] = [];
    if (!this.started) {
      this.started = true;
      // frame header: magic, descriptor 0 (no checksum, no content size, not single-segment), window 2^17
      const h = new Uint8Array(6);
      new DataView(h.buffer).setUint32(0, ZSTD_MAGIC, true);
      h[4] = 0;
      h[5] = (17 - 10) << 3;
      parts.push(h);
    }
    for (let at = 0; at < pages.length; ) {
      const run = runLength(pages, at, Math.min(pages.length, at + MAX_BLOCK));
      if (run >= 64) {
        parts.push(blockHeader(1, run), pages.subarray(at, at + 1));
        at += run;
        continue;
      }
      // raw up to the next long run
      let end = at;
      const limit = Math.min(pages.length, at + MAX_BLOCK);
      while (end < limit && runLength(pages, end, Math.min(limit, end + 64)) < 64) end += Math.max(1, runLength(pages, end, limit));
      end = Math.min(end, limit);
      parts.push(blockHeader(0, end - at), pages.subarray(at, end));
      at = end;
    }
    return concatBytes(parts);
  }
}

function runLength(b: Uint8Array, at: number, limit: number): number {
  const v = b[at];
  let i = at + 1;
  while (i < limit && b[i] === v) i++;
  return i - at;
}

/** Block header (3 bytes LE): last_block 0, type (0 raw, 1 RLE), size. */
function blockHeader(type: number, size: number): Uint8Array {
  const v = (size << 3) | (type << 1);
  return new Uint8Array([v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff]);
}
