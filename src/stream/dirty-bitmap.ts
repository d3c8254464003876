import type { ByteReader } from '../codec/byte-reader.js';
import { MigstreamError } from '../codec/errors.js';

/** migration/block-dirty-bitmap.c: DIRTY_BITMAP_MIG_FLAG_*. */
export const DBM_EOS = 0x01;
export const DBM_ZEROES = 0x02;
export const DBM_BITMAP_NAME = 0x04;
export const DBM_DEVICE_NAME = 0x08;
export const DBM_START = 0x10;
export const DBM_COMPLETE = 0x20;
export const DBM_BITS = 0x40;
const DBM_EXTRA_FLAGS = 0x80;
const DBM_START_RESERVED = 0xf8;
/** The START record's bitmap flags: recording on the source, persistent (kept in a qcow2 image). */
export const DBM_START_ENABLED = 0x01;
export const DBM_START_PERSISTENT = 0x02;
/** QEMU refuses a bits buffer over 10 × its 1 KiB chunk. */
export const DBM_MAX_BUFFER = 10 * 1024;

/** One record of the "dirty-bitmap" section (block dirty bitmaps, migrated with the dirty-bitmaps capability). */
export interface DirtyBitmapRecord {
  flags: number;
  /** Node and bitmap aliases; absent when the record reuses the previous one's. */
  node?: string;
  bitmap?: string;
  kind: 'start' | 'complete' | 'bits' | 'eos';
  /** start: bitmap granularity (bytes) and its flags (enabled, persistent). */
  granularity?: number;
  bitmapFlags?: number;
  /** bits: the 512-byte sector range covered, and the serialised bitmap (absent when ZEROES). */
  startSector?: number;
  sectors?: number;
  data?: Uint8Array;
  /** The record exactly as read, for pass-through. */
  raw: Uint8Array;
}

/**
 * Reads one dirty-bitmap record: flags (1, 2 or 4 bytes: a set top bit asks
 * for more), optional node and bitmap aliases, then START (be32 granularity,
 * u8 flags), COMPLETE (nothing) or BITS (be64 sector, be32 count, and unless
 * ZEROES be64 size + the bitmap). A record with EOS ends the section.
 */
export function readDirtyBitmapRecord(r: ByteReader): DirtyBitmapRecord {
  const start = r.pos;
  let flags = r.u8('dirty-bitmap flags');
  if (flags & DBM_EXTRA_FLAGS) {
    flags = (flags << 8) | r.u8('dirty-bitmap flags');
    if (flags & DBM_EXTRA_FLAGS) flags = ((flags << 16) | r.be16('dirty-bitmap flags')) >>> 0;
  }
  const rec: Omit<DirtyBitmapRecord, 'raw'> = { flags, kind: 'eos' };
  if (flags & DBM_DEVICE_NAME) rec.node = counted(r, 'Unable to read node alias string');
  if (flags & DBM_BITMAP_NAME) rec.bitmap = counted(r, 'Unable to read bitmap alias string');
  if (flags & DBM_START) {
    rec.kind = 'start';
    rec.granularity = r.be32('a bitmap granularity');
    rec.bitmapFlags = r.u8('bitmap flags');
    if (rec.bitmapFlags & DBM_START_RESERVED) {
      throw new MigstreamError('BAD_SECTION', r.offset - 1, `Unknown flags in migrated dirty bitmap header: 0x${rec.bitmapFlags.toString(16)}`);
    }
  } else if (flags & DBM_COMPLETE) {
    rec.kind = 'complete';
  } else if (flags & DBM_BITS) {
    rec.kind = 'bits';
    rec.startSector = r.be64('a bitmap start sector');
    rec.sectors = r.be32('a bitmap sector count');
    if (!(flags & DBM_ZEROES)) {
      const sizeAt = r.offset;
      const size = r.be64('a bitmap buffer size');
      if (size > DBM_MAX_BUFFER) {
        throw new MigstreamError('LIMIT', sizeAt, `Bitmap migration stream buffer allocation request is too large: ${size} > ${DBM_MAX_BUFFER}`);
      }
      rec.data = r.bytes(size, 'bitmap bits');
    }
  }
  // Like QEMU, a record with none of START/COMPLETE/BITS is a header alone.
  return { ...rec, raw: r.buf.subarray(start, r.pos) };
}

function counted(r: ByteReader, message: string): string {
  const at = r.offset;
  const s = r.str8('an alias string');
  if (s.length === 0) throw new MigstreamError('BAD_SECTION', at, `${message} (empty)`);
  return s;
}
