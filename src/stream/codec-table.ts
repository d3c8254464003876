import { Lz4Compressor, lz4DecompressInto } from '../codec/lz4-block.js';
import { fflateZlib, type ZlibPageCodec } from '../codec/zlib-page.js';

/** Which implementation of the page codecs: Node's (node:zlib, the LZ4 wasm kernels) or the portable one (fflate, migstream's LZ4). */
export type CodecImpl = 'node' | 'portable';

/** One implementation of the codecs pages and chunks use. Functions throw a plain Error; callers add the offset. */
export interface PageCodecSet {
  zlib: ZlibPageCodec;
  /** LZ4 block compression at acceleration 1 (other accelerations always use migstream's LZ4 port). */
  lz4Compress(page: Uint8Array): Uint8Array;
  /** LZ4 block decompression into `out`, which the block must fill exactly. */
  lz4DecompressInto(block: Uint8Array, out: Uint8Array): void;
  /** Optional: lz4Compress's bytes as a view valid until the next call into the codec. */
  lz4CompressView?(page: Uint8Array): Uint8Array;
  /** Optional: liblz4's algorithm at `acceleration` (Lz4Compressor's bytes) for pages up to 65547 bytes, as a view valid until the next call. */
  lz4CompressFastView?(page: Uint8Array, acceleration: number): Uint8Array;
  /**
   * Optional, the contiguous batch form (one call per batch: what the pool's
   * tasks use): compress `pages` (count × pageSize bytes) into their blocks
   * back to back and each one's size. Without `acceleration` the bytes are
   * lz4Compress's (lz4_flex's), with one liblz4's at that acceleration
   * (lz4CompressFastView's).
   */
  lz4CompressPages?(pages: Uint8Array, pageSize: number, acceleration?: number): { data: Uint8Array; sizes: Uint32Array };
  /** Optional, the contiguous batch form: blocks back to back in `data`, their `sizes`, into consecutive pages of `out`; the first failure, or undefined. */
  lz4DecompressPages?(data: Uint8Array, sizes: Uint32Array, pageSize: number, out: Uint8Array): { index: number; message: string } | undefined;
}

const acceleration1 = new Lz4Compressor(1);

/** fflate and migstream's own LZ4 port (src/codec/lz4-block.ts): no Node, no wasm, loads anywhere. */
export const portableCodecs: PageCodecSet = {
  zlib: fflateZlib,
  lz4Compress: (page) => acceleration1.compress(page),
  lz4DecompressInto,
};

const table: Record<CodecImpl, PageCodecSet | undefined> = { portable: portableCodecs, node: undefined };

/**
 * The one place codecs are injected: migstream/node registers "node"
 * (node:zlib, the LZ4 wasm kernels) and makes it the default; anything else sees
 * the portable set. Both write streams every reader loads; their bytes differ.
 */
export function registerCodecs(impl: 'node', set: PageCodecSet): void {
  table[impl] = set;
}

export function codecSet(impl: CodecImpl): PageCodecSet {
  const set = table[impl];
  if (!set) throw new TypeError(`the "${impl}" codecs are not loaded: import migstream/node, or use impl "portable"`);
  return set;
}

/** "node" once migstream/node is loaded, else "portable". */
export function defaultImpl(): CodecImpl {
  return table.node ? 'node' : 'portable';
}

/** Decodes one LZ4 block into a fresh buffer of exactly `size` bytes. */
export function lz4Decompress(set: PageCodecSet, block: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(size);
  set.lz4DecompressInto(block, out);
  return out;
}
