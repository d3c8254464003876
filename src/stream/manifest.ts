import { decode, encode } from '@msgpack/msgpack';
import { MigstreamError } from '../codec/errors.js';
import { BLK_COMPRESSED, BLK_VAR_CHUNK, RAM_DIGEST, RAM_LZ4_PAGE } from './constants.js';

/**
 * The extension manifest (docs/extension-format.md): which of migstream's
 * own extensions a stream uses, and their parameters, declared once right
 * after the configuration so a reader can refuse the stream before it reads
 * a single page. msgpack-encoded, self-describing and versioned.
 */
export interface ExtensionManifest {
  /** Always "migstream". */
  format: string;
  /** Version of the manifest mechanism itself; readers accept 1. */
  version: number;
  extensions: ExtensionEntry[];
}

export interface ExtensionEntry {
  /** e.g. "lz4-pages". */
  name: string;
  /** The extension's own version; a reader supports versions up to its own. */
  version: number;
  /**
   * A reader that doesn't know this extension must stop (default true). Only
   * extensions that add no records and change no meaning may say false.
   */
  required?: boolean;
  params: Record<string, unknown>;
}

export const MANIFEST_FORMAT = 'migstream';
export const MANIFEST_VERSION = 1;

/** Parameters of the "lz4-pages" extension. */
export interface Lz4PagesParams {
  /** RAM record flag of an LZ4 page (0x400). */
  flag: number;
  pageSize: number;
  /** liblz4 acceleration the writer used (informational for readers). */
  acceleration: number;
  /** Which compressor wrote the blocks ("migstream-lz4" or "lz4_flex"), informational. */
  compressor: string;
}

/** Extensions this version of migstream reads, with the newest version of each. */
export const SUPPORTED_EXTENSIONS: Readonly<Record<string, number>> = { 'lz4-pages': 1, 'block-chunks': 1, 'chunk-compression': 1, 'iteration-digests': 1 };

export function lz4PagesEntry(params: Omit<Lz4PagesParams, 'flag'>): ExtensionEntry {
  return { name: 'lz4-pages', version: 1, params: { flag: RAM_LZ4_PAGE, ...params } };
}

/** Parameters of the "block-chunks" extension (variable-size block-migration chunks). */
export interface BlockChunksParams {
  /** Block record flag that marks a chunk with an explicit be32 length (0x10). */
  flag: number;
  /** Chunk size the writer used: a power of two from 4 KiB to 1 MiB (the last chunk of a disk may be shorter). */
  chunkSize: number;
}

export function blockChunksEntry(chunkSize: number): ExtensionEntry {
  return { name: 'block-chunks', version: 1, params: { flag: BLK_VAR_CHUNK, chunkSize } };
}

/** Parameters of the "chunk-compression" extension (compressed variable-size chunks, docs/extension-format.md §4). */
export interface ChunkCompressionParams {
  /** Block record flag of a compressed chunk (0x20), always together with block-chunks' 0x10. */
  flag: number;
  /** The codec the writer used ("zlib" or "lz4"); each record names its own codec, so this is informational. */
  codec: string;
  /** zlib level or LZ4 acceleration the writer used; informational. */
  level: number;
}

export function chunkCompressionEntry(codec: 'zlib' | 'lz4', level: number): ExtensionEntry {
  return { name: 'chunk-compression', version: 1, params: { flag: BLK_COMPRESSED, codec, level } };
}

/** Checks the chunk-compression parameters: BAD_MANIFEST for a wrong flag or without block-chunks, whose records it compresses. */
export function checkChunkCompression(m: ExtensionManifest, offset: number): void {
  const e = m.extensions.find((x) => x.name === 'chunk-compression');
  if (!e) return;
  if (e.params.flag !== BLK_COMPRESSED) {
    throw new MigstreamError('BAD_MANIFEST', offset, `chunk-compression: record flag ${show(e.params.flag)}, expected 0x${BLK_COMPRESSED.toString(16)}`);
  }
  if (!m.extensions.some((x) => x.name === 'block-chunks')) {
    throw new MigstreamError('BAD_MANIFEST', offset, 'chunk-compression compresses block-chunks records, but the manifest does not declare "block-chunks"');
  }
}

/** Parameters of the "iteration-digests" extension (per-iteration page digests, docs/extension-format.md §5). */
export interface IterationDigestsParams {
  /** RAM record flag of a digest record (0x800). */
  flag: number;
  /** Hash over each block's pages of an iteration: "xxh64" (XXH64, seed 0, 8-byte canonical digest). */
  algorithm: string;
}

/** Digest algorithms this migstream computes, with their digest length in bytes. */
export const DIGEST_ALGORITHMS: Readonly<Record<string, number>> = { xxh64: 8 };

export function iterationDigestsEntry(algorithm = 'xxh64'): ExtensionEntry {
  return { name: 'iteration-digests', version: 1, params: { flag: RAM_DIGEST, algorithm } };
}

/**
 * Checks the iteration-digests parameters against the stream: BAD_MANIFEST
 * for a wrong flag or a page size that cannot hold it, UNSUPPORTED_EXTENSION
 * for an algorithm this migstream does not compute.
 */
export function digestParams(m: ExtensionManifest, offset: number, pageSize: number): (IterationDigestsParams & { length: number }) | undefined {
  const e = m.extensions.find((x) => x.name === 'iteration-digests');
  if (!e) return undefined;
  const p = e.params as Partial<IterationDigestsParams>;
  if (typeof p.algorithm !== 'string') throw new MigstreamError('BAD_MANIFEST', offset, 'iteration-digests: expected a string "algorithm"');
  const length = Object.hasOwn(DIGEST_ALGORITHMS, p.algorithm) ? DIGEST_ALGORITHMS[p.algorithm] : undefined;
  if (length === undefined) {
    throw new MigstreamError(
      'UNSUPPORTED_EXTENSION',
      offset,
      `the stream uses extension "iteration-digests" with algorithm ${JSON.stringify(p.algorithm).slice(0, 80)}, which this migstream does not support (supported: ${Object.keys(DIGEST_ALGORITHMS).join(', ')})`,
    );
  }
  if (p.flag !== RAM_DIGEST) {
    throw new MigstreamError('BAD_MANIFEST', offset, `iteration-digests: record flag ${show(p.flag)}, expected 0x${RAM_DIGEST.toString(16)}`);
  }
  if (pageSize <= RAM_DIGEST) {
    throw new MigstreamError('BAD_MANIFEST', offset, `iteration-digests needs pages above ${RAM_DIGEST} bytes for its record flag, the stream has ${pageSize}`);
  }
  return { flag: RAM_DIGEST, algorithm: p.algorithm, length };
}

export function encodeManifest(extensions: ExtensionEntry[]): Uint8Array {
  const bytes = encode({ format: MANIFEST_FORMAT, version: MANIFEST_VERSION, extensions }, { sortKeys: true });
  if (bytes.length > 0xffff) throw new RangeError(`extension manifest of ${bytes.length} bytes: a command record holds at most 65535`);
  return bytes;
}

/**
 * Parses and checks a manifest payload found at `offset` (the record's
 * first byte). Throws BAD_MANIFEST for malformed ones and
 * UNSUPPORTED_EXTENSION when it lists a required extension `supported`
 * doesn't have.
 */
export function decodeManifest(payload: Uint8Array, offset: number, supported: Readonly<Record<string, number>> = SUPPORTED_EXTENSIONS): ExtensionManifest {
  let raw: unknown;
  try {
    raw = decode(payload, { maxStrLength: 4096, maxArrayLength: 256, maxMapLength: 256, maxBinLength: 4096, maxExtLength: 0 });
  } catch (e) {
    throw new MigstreamError('BAD_MANIFEST', offset, `extension manifest is not valid msgpack: ${(e as Error).message}`);
  }
  const bad = (what: string): never => {
    throw new MigstreamError('BAD_MANIFEST', offset, `extension manifest: ${what}`);
  };
  if (!isMap(raw)) return bad('expected a map');
  if (raw.format !== MANIFEST_FORMAT) bad(`expected format "${MANIFEST_FORMAT}", found ${JSON.stringify(raw.format)}`);
  if (raw.version !== MANIFEST_VERSION) {
    throw new MigstreamError(
      'UNSUPPORTED_EXTENSION',
      offset,
      `extension manifest version ${show(raw.version)}: this migstream reads version ${MANIFEST_VERSION}`,
    );
  }
  if (!Array.isArray(raw.extensions)) return bad('expected an "extensions" array');
  const extensions: ExtensionEntry[] = [];
  const seen = new Set<string>();
  for (const e of raw.extensions as unknown[]) {
    if (!isMap(e) || typeof e.name !== 'string' || !Number.isInteger(e.version) || !isMap(e.params)) {
      return bad('each extension needs a string "name", an integer "version" and a "params" map');
    }
    if (seen.has(e.name)) bad(`extension "${e.name}" listed twice`);
    seen.add(e.name);
    const required = e.required !== false;
    const have = supported[e.name];
    if (required && (have === undefined || (e.version as number) > have)) {
      const why = have === undefined ? 'which this migstream does not support' : `version ${show(e.version)}, newer than the supported ${have}`;
      throw new MigstreamError('UNSUPPORTED_EXTENSION', offset, `the stream uses extension "${e.name}" ${why}`);
    }
    extensions.push({ name: e.name, version: e.version as number, required, params: e.params });
  }
  return { format: MANIFEST_FORMAT, version: MANIFEST_VERSION, extensions };
}

/** Checks the lz4-pages parameters against the stream. */
export function lz4Params(m: ExtensionManifest, offset: number, pageSize: number): Lz4PagesParams | undefined {
  const e = m.extensions.find((x) => x.name === 'lz4-pages');
  if (!e) return undefined;
  const p = e.params as Partial<Lz4PagesParams>;
  if (p.flag !== RAM_LZ4_PAGE) {
    throw new MigstreamError('BAD_MANIFEST', offset, `lz4-pages: record flag ${show(p.flag)}, expected 0x${RAM_LZ4_PAGE.toString(16)}`);
  }
  if (p.pageSize !== pageSize) {
    throw new MigstreamError('BAD_MANIFEST', offset, `lz4-pages: page size ${show(p.pageSize)} differs from the stream's ${pageSize}`);
  }
  return p as Lz4PagesParams;
}

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/** A manifest value as a message shows it: JSON (maps and arrays included), at most 80 characters. */
function show(v: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? `${x}n` : x instanceof Uint8Array ? `<${x.length} bytes>` : x));
  } catch {
    text = undefined;
  }
  text ??= String(v);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
