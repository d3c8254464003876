import { Lz4Compressor } from '../codec/lz4-block.js';
import { checkLevel, type ZlibPageCodec } from '../codec/zlib-page.js';
import { codecSet, defaultImpl, type CodecImpl } from './codec-table.js';
import type { PageCompressorFn } from './encoder.js';
import type { ExtensionEntry } from './manifest.js';
import { blockChunksEntry, chunkCompressionEntry, lz4PagesEntry } from './extensions/registry.js';

/** How pages are compressed: QEMU's zlib framing, or migstream's LZ4 extension. */
export type CompressionCodec = 'zlib' | 'lz4';

export interface CompressionSpec {
  codec: CompressionCodec;
  /** zlib level 0–9 (QEMU's compress-level). Default 1, QEMU's default. */
  level?: number;
  /** LZ4 acceleration 1–65537. Default 1. */
  acceleration?: number;
  /**
   * Implementations: "node" (node:zlib; LZ4 as lz4_flex writes it, via the wasm kernels, at
   * acceleration 1) or "portable" (fflate; migstream's LZ4 port). Default
   * "node" where migstream/node is loaded, else "portable" (src/stream/codec-table.ts).
   * Both write streams any reader loads; their bytes differ.
   */
  impl?: 'node' | 'portable';
}

export interface ResolvedSpec {
  codec: CompressionCodec;
  level: number;
  acceleration: number;
  impl: 'node' | 'portable';
}

export function resolveSpec(spec: CompressionSpec): ResolvedSpec {
  const r: ResolvedSpec = { codec: spec.codec, level: spec.level ?? 1, acceleration: spec.acceleration ?? 1, impl: spec.impl ?? defaultImpl() };
  if (r.codec !== 'zlib' && r.codec !== 'lz4') throw new RangeError(`unknown compression codec "${String(r.codec)}"`);
  checkLevel(r.level);
  new Lz4Compressor(r.acceleration); // validates the range
  return r;
}

/** Which LZ4 compressor writes the blocks: lz4_flex has no acceleration knob, so only acceleration 1 uses it. */
export function lz4CompressorName(spec: ResolvedSpec): 'lz4_flex' | 'migstream-lz4' {
  return spec.impl === 'node' && spec.acceleration === 1 ? 'lz4_flex' : 'migstream-lz4';
}

export function zlibImpl(impl: CodecImpl): ZlibPageCodec {
  return codecSet(impl).zlib;
}

/** A page compressor for `spec`; each call returns fresh bytes. */
export function pageCompressor(spec: ResolvedSpec): (page: Uint8Array) => Uint8Array {
  if (spec.codec === 'zlib') {
    const z = zlibImpl(spec.impl);
    return (page) => z.deflate(page, spec.level);
  }
  if (lz4CompressorName(spec) === 'lz4_flex') return codecSet('node').lz4Compress;
  const fast = spec.impl === 'node' ? codecSet('node').lz4CompressFastView : undefined;
  if (fast) return (page) => fast(page, spec.acceleration).slice();
  const c = new Lz4Compressor(spec.acceleration);
  return (page) => c.compress(page);
}

/**
 * Decompresses a batch of blocks into consecutive pages of `out`. Returns
 * per-page lengths (a zlib page may inflate short; QEMU leaves the rest of
 * the page as it was) or the first failure.
 */
export function decompressBatch(
  codec: CompressionCodec,
  impl: CodecImpl,
  blocks: Uint8Array[],
  pageSize: number,
  out: Uint8Array,
): { lengths: Uint32Array; error?: { index: number; message: string } } {
  const lengths = new Uint32Array(blocks.length);
  if (codec === 'lz4') {
    lengths.fill(pageSize);
    const set = codecSet(impl);
    for (let i = 0; i < blocks.length; i++) {
      try {
        set.lz4DecompressInto(blocks[i]!, out.subarray(i * pageSize, (i + 1) * pageSize));
      } catch (e) {
        return { lengths, error: { index: i, message: (e as Error).message } };
      }
    }
    return { lengths };
  }
  const z = zlibImpl(impl);
  for (let i = 0; i < blocks.length; i++) {
    try {
      const page = z.inflate(blocks[i]!, pageSize);
      out.set(page, i * pageSize);
      lengths[i] = page.length;
    } catch (e) {
      return { lengths, error: { index: i, message: (e as Error).message } };
    }
  }
  return { lengths };
}

/**
 * Decompresses block chunks (extension "chunk-compression") into consecutive
 * ranges of `out`, each exactly its `lengths` entry (a chunk that inflates
 * short or long is an error, unlike a zlib page). Returns the first failure.
 */
export function decompressChunks(
  codec: CompressionCodec,
  impl: CodecImpl,
  blocks: Uint8Array[],
  lengths: Uint32Array,
  out: Uint8Array,
): { index: number; message: string } | undefined {
  let at = 0;
  for (let i = 0; i < blocks.length; i++) {
    const length = lengths[i]!;
    const target = out.subarray(at, at + length);
    at += length;
    try {
      if (codec === 'lz4') {
        codecSet(impl).lz4DecompressInto(blocks[i]!, target);
      } else {
        const data = zlibImpl(impl).inflate(blocks[i]!, length);
        if (data.length !== length) return { index: i, message: `inflated to ${data.length} bytes, the record says ${length}` };
        target.set(data);
      }
    } catch (e) {
      return { index: i, message: (e as Error).message };
    }
  }
  return undefined;
}

/** The extensions a stream written with `spec` must declare: none for zlib (QEMU's own), lz4-pages for LZ4. */
export function extensionsFor(spec: ResolvedSpec | undefined, pageSize: number): ExtensionEntry[] {
  if (!spec || spec.codec !== 'lz4') return [];
  return [lz4PagesEntry({ pageSize, acceleration: spec.acceleration, compressor: lz4CompressorName(spec) })];
}

/** The extensions variable-size block chunks of `chunkSize` need: block-chunks, and chunk-compression when `chunkSpec` compresses them. */
export function chunkExtensions(chunkSize: number, chunkSpec: ResolvedSpec | undefined): ExtensionEntry[] {
  const entries = [blockChunksEntry(chunkSize)];
  if (chunkSpec) entries.push(chunkCompressionEntry(chunkSpec.codec, chunkSpec.codec === 'zlib' ? chunkSpec.level : chunkSpec.acceleration));
  return entries;
}

/** What the writers compress with: pages (`compress`) and variable-size block chunks (`chunkCompress`). */
export interface ResolvedSpecs {
  spec?: ResolvedSpec;
  chunkSpec?: ResolvedSpec;
}

export function resolveSpecs(options: { compress?: CompressionSpec; chunkCompress?: CompressionSpec }): ResolvedSpecs {
  return {
    spec: options.compress ? resolveSpec(options.compress) : undefined,
    chunkSpec: options.chunkCompress ? resolveSpec(options.chunkCompress) : undefined,
  };
}

/** StreamEncoder options for `specs`: its page and chunk compressors. */
export function encoderCompressors({ spec, chunkSpec }: ResolvedSpecs): { compressor?: PageCompressorFn; chunkCompressor?: PageCompressorFn } {
  return { compressor: spec && encoderCompressor(spec), chunkCompressor: chunkSpec && encoderCompressor(chunkSpec) };
}

/** The encoder-side compressor for `spec`. */
export function encoderCompressor(spec: ResolvedSpec): PageCompressorFn {
  return { codec: spec.codec, compress: pageCompressor(spec), compressView: pageCompressorView(spec) };
}

/** The same compressor returning views valid until its next call (LZ4 only), or undefined. */
function pageCompressorView(spec: ResolvedSpec): ((page: Uint8Array) => Uint8Array) | undefined {
  if (spec.codec !== 'lz4') return undefined;
  if (lz4CompressorName(spec) === 'lz4_flex') return codecSet('node').lz4CompressView;
  const fast = spec.impl === 'node' ? codecSet('node').lz4CompressFastView : undefined;
  if (fast) return (page) => fast(page, spec.acceleration);
  const c = new Lz4Compressor(spec.acceleration);
  return (page) => c.compressView(page);
}
