import type { ByteReader } from '../../codec/byte-reader.js';
import type { ByteWriter } from '../../codec/byte-writer.js';
import { MigstreamError } from '../../codec/errors.js';
import { BLK_COMPRESSED, BLK_VAR_CHUNK, BLK_ZERO_BLOCK, CHUNK_CODEC_LZ4, CHUNK_CODEC_ZLIB } from '../constants.js';
import type { BlockChunkEvent } from '../events.js';
import type { ExtensionEntry } from '../manifest.js';
import { blockChunks, writeVarChunk } from './block-chunks.js';
import { type BlockHeader, type Extension, type RecordContext, show } from './extension.js';

/** Parameters of the "chunk-compression" extension (compressed variable-size chunks, docs/extension-format.md §4). */
export interface ChunkCompressionParams {
  /** Block record flag of a compressed chunk (0x20), always together with block-chunks' 0x10. */
  flag: number;
  /** The codec the writer used ("zlib" or "lz4"); each record names its own codec, so this is informational. */
  codec: string;
  /** zlib level or LZ4 acceleration the writer used; informational. */
  level: number;
}

const NAME = 'chunk-compression';

export function chunkCompressionEntry(codec: 'zlib' | 'lz4', level: number): ExtensionEntry {
  return { name: NAME, version: 1, params: { flag: BLK_COMPRESSED, codec, level } };
}

/** Compressed variable-size chunks: block flag 0x20 with 0x10, a codec byte and be32 length before the payload. */
export const chunkCompression: Extension = {
  name: NAME,
  version: 1,
  block: { flag: BLK_COMPRESSED, phase: 'payload', what: 'a compressed chunk' },
  defaultEntry: () => chunkCompressionEntry('zlib', 1),
  // BAD_MANIFEST for a wrong flag or without block-chunks, whose records it compresses
  declare(entry, manifest, at) {
    if (entry.params.flag !== BLK_COMPRESSED) {
      throw new MigstreamError('BAD_MANIFEST', at, `${NAME}: record flag ${show(entry.params.flag)}, expected 0x${BLK_COMPRESSED.toString(16)}`);
    }
    if (!manifest.extensions.some((x) => x.name === blockChunks.name)) {
      throw new MigstreamError('BAD_MANIFEST', at, `${NAME} compresses ${blockChunks.name} records, but the manifest does not declare "${blockChunks.name}"`);
    }
    return { readBlockPayload: readCompressedChunk };
  },
};

// After the length: a codec byte and be32 clen (1 <= clen < length), then the payload.
function readCompressedChunk(ctx: RecordContext, r: ByteReader, rec: BlockHeader): void {
  const { at, flags, device, sector, length } = rec;
  if (!(flags & BLK_VAR_CHUNK) || flags & BLK_ZERO_BLOCK) {
    throw new MigstreamError(
      'BAD_BLOCK_RECORD',
      at,
      `Unknown block migration flags: 0x${flags.toString(16)} (a compressed chunk must be a variable-size, non-zero chunk)`,
      { device },
    );
  }
  const codecAt = r.offset;
  const id = r.u8('a chunk codec byte');
  const codec = id === CHUNK_CODEC_ZLIB ? 'zlib' : id === CHUNK_CODEC_LZ4 ? 'lz4' : undefined;
  if (!codec) {
    throw new MigstreamError('BAD_BLOCK_RECORD', codecAt, `expected a chunk codec (${CHUNK_CODEC_ZLIB} zlib, ${CHUNK_CODEC_LZ4} LZ4), found ${id}`, { device });
  }
  const clenAt = r.offset;
  const clen = r.be32('a compressed chunk length');
  if (clen === 0 || clen >= length) {
    throw new MigstreamError('DECOMPRESS', clenAt, `expected a compressed length of 1..${length - 1} bytes (less than the chunk), found ${clen}`, { device });
  }
  const dataOffset = r.offset;
  const compressed = r.bytes(clen, 'compressed chunk data');
  let data = compressed;
  if (!ctx.defer) {
    try {
      data = codec === 'lz4' ? ctx.lz4Page(compressed, length) : ctx.inflate(compressed, length);
    } catch (e) {
      throw new MigstreamError('DECOMPRESS', dataOffset, `${codec} chunk failed to decompress: ${e instanceof Error ? e.message : String(e)}`, { device });
    }
    if (data.length !== length) {
      throw new MigstreamError('DECOMPRESS', dataOffset, `${codec} chunk inflated to ${data.length} bytes, the record says ${length}`, { device });
    }
  }
  const ev: BlockChunkEvent = {
    type: 'block-chunk',
    device,
    sector,
    length,
    zero: false,
    data,
    codec,
    compressedBytes: clen,
    dataOffset,
    wireBytes: r.pos - rec.start,
  };
  if (ctx.defer) ev.encoded = true;
  ctx.emit(ev);
}

/** A compressed chunk record up to its payload: var-chunk header with 0x20, codec byte, be32 payload length. */
export function writeCompressedChunkHeader(w: ByteWriter, codec: 'zlib' | 'lz4', device: string, sector: number, length: number, payloadLength: number): void {
  writeVarChunk(w, device, sector, length, false, BLK_COMPRESSED);
  w.u8(codec === 'zlib' ? CHUNK_CODEC_ZLIB : CHUNK_CODEC_LZ4).be32(payloadLength);
}
