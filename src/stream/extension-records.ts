import { MigstreamError } from '../codec/errors.js';
import { RAM_LZ4_PAGE } from './constants.js';
import { checkChunkCompression, decodeManifest, digestParams, lz4Params } from './manifest.js';
import type { DirtyBitmapRecord } from './dirty-bitmap.js';
import type { StreamDecoder } from './decoder.js';

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
