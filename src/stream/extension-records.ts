import { ByteReader } from '../codec/byte-reader.js';
import { concatBytes } from '../codec/concat.js';
import { asMigstreamError, MigstreamError, NeedMoreData, type ErrorCode } from '../codec/errors.js';
import {
  BLK_CHUNK_SIZE,
  BLK_DEVICE_BLOCK,
  BLK_EOS,
  BLK_FLAG_MASK,
  BLK_PROGRESS,
  BLK_VAR_CHUNK,
  BLK_COMPRESSED,
  CHUNK_CODEC_LZ4,
  CHUNK_CODEC_ZLIB,
  BLK_ZERO_BLOCK,
  COMMAND_LENGTHS,
  COMMAND_NAMES,
  DEFAULT_PAGE_SIZE,
  ENCODING_FLAG_XBZRLE,
  VAR_CHUNK_MAX,
  RAM_COMPRESS_PAGE,
  RAM_CONTINUE,
  RAM_EOS,
  RAM_HOOK,
  RAM_MEM_SIZE,
  RAM_MULTIFD_FLUSH,
  RAM_PAGE,
  RAM_XBZRLE,
  RAM_ZERO,
  VM_COMMAND,
  VM_CONFIGURATION,
  VM_EOF,
  VM_FILE_MAGIC,
  VM_FILE_VERSION,
  VM_FILE_VERSION_COMPAT,
  VM_SECTION_END,
  VM_SECTION_FOOTER,
  VM_SECTION_FULL,
  VM_SECTION_PART,
  VM_SECTION_START,
  VM_SUBSECTION,
  compressBound,
  MIGSTREAM_MANIFEST_COMMAND,
  RAM_LZ4_PAGE,
  RAM_DIGEST,
} from './constants.js';
import { lz4Bound } from '../codec/lz4-block.js';
import { checkChunkCompression, decodeManifest, digestParams, lz4Params, SUPPORTED_EXTENSIONS } from './manifest.js';
import { codecSet, defaultImpl, lz4Decompress } from './codec-table.js';
import type { BlockChunkEvent, EventHandler, PageKind, RamBlockInfo, SectionInfo, SectionKind, StreamEvent } from './events.js';
import type { PageInflater } from './inflate.js';
import { parseTail } from './tail.js';
import { DBM_EOS, readDirtyBitmapRecord, type DirtyBitmapRecord } from './dirty-bitmap.js';
import { xbzrleDecode } from '../xbzrle/decode.js';
import { EMPTY, hex, ZERO_DATA, type StreamDecoder } from './decoder.js';

// migstream's extension manifest: msgpack, before any section, at most once.
export function readManifest(this: StreamDecoder, payload: Uint8Array, at: number): void {
  if (this.sawSection) throw new MigstreamError('BAD_MANIFEST', at, 'the extension manifest must come before the first section');
  if (this.manifestSeen) throw new MigstreamError('BAD_MANIFEST', at, 'a second extension manifest');
  this.manifestSeen = true;
  const manifest = decodeManifest(payload, at, this.supportedExtensions);
  checkChunkCompression(manifest, at);
  this.enableExtensions(manifest.extensions.map((e) => e.name));
  const digests = this.supportedExtensions['iteration-digests'] !== undefined ? digestParams(manifest, at, this.pageSize) : undefined;
  if (digests) {
    this.digestLength = digests.length;
    this.digestAlgorithm = digests.algorithm;
  }
  if (lz4Params(manifest, at, this.pageSize)) {
    if (this.pageSize <= RAM_LZ4_PAGE) {
      throw new MigstreamError('BAD_MANIFEST', at, `lz4-pages needs pages above ${RAM_LZ4_PAGE} bytes for its record flag, the stream has ${this.pageSize}`);
    }
    this.lz4 = true;
  }
  this.emit({ type: 'manifest', manifest, payload });
}

// QEMU's dirty_bitmap_load_bits: the bits buffer must hold exactly the bitmap's serialisation of
// the range, padded to 32 bytes as send_bitmap_bits pads it (checked once START gave the granularity).
export function checkBitmapRecord(this: StreamDecoder, rec: DirtyBitmapRecord, at: number): void {
  const key = `${this.bitmapNode}\u0000${this.bitmapName}`;
  if (rec.kind === 'start') this.bitmapGranularity.set(key, rec.granularity!);
  const granularity = this.bitmapGranularity.get(key);
  if (rec.kind !== 'bits' || rec.data === undefined || !granularity) return;
  const needed = Math.ceil(Math.ceil((rec.sectors! * 512) / granularity) / 64) * 8;
  if (rec.data.length < needed || rec.data.length > Math.ceil(needed / 32) * 32) {
    throw new MigstreamError(
      'BAD_SECTION',
      at + rec.raw.length - rec.data.length - 8,
      `Migrated bitmap granularity doesn't match the destination bitmap '${this.bitmapName}' granularity: ${rec.sectors} sectors at granularity ${granularity} need ${needed} bytes of bits (up to ${Math.ceil(needed / 32) * 32} padded), the record carries ${rec.data.length}`,
      { section: 'dirty-bitmap' },
    );
  }
}
