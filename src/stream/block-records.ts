import type { ByteReader } from '../codec/byte-reader.js';
import { MigstreamError } from '../codec/errors.js';
import { BLK_CHUNK_SIZE, BLK_DEVICE_BLOCK, BLK_EOS, BLK_FLAG_MASK, BLK_PROGRESS, BLK_ZERO_BLOCK } from './constants.js';
import { EMPTY, hex } from './bytes.js';
import type { BlockHeader, RecordContext } from './extensions/extension.js';

/**
 * One block-migration record: be64 sector<<9|flags, then device name and
 * 1 MiB unless ZERO_BLOCK; the declared extensions read the fields and
 * payloads their flags add. True at the section's EOS.
 */
export function readBlockRecord(ctx: RecordContext, r: ByteReader): boolean {
  const at = r.offset;
  const start = r.pos;
  const hi = r.be32('a block record header');
  const lo = r.be32('a block record header');
  const flags = lo & BLK_FLAG_MASK;
  const sector = hi * 0x800000 + (lo >>> 9);
  // As for RAM records: a JS number holds the sector exactly only below 2^53; QEMU ignores those bits
  // in EOS and prints a PROGRESS percent as (int)(header >> 9).
  const huge = hi > 0x1fffff;
  if (flags & BLK_DEVICE_BLOCK) {
    if (huge) throw new MigstreamError('BAD_BLOCK_RECORD', at, `block record header 0x${hex(hi, 8)}${hex(lo, 8)} beyond 2^53`);
    const device = ctx.name(r, 'a block device name', 'BAD_BLOCK_RECORD');
    const rec: BlockHeader = { at, start, flags, device, sector, zero: (flags & BLK_ZERO_BLOCK) !== 0, length: BLK_CHUNK_SIZE, explicitLength: false };
    ctx.extensions.readBlockHeader(ctx, r, rec);
    const length = rec.length;
    if (!rec.explicitLength && !rec.zero && length > ctx.limits.maxBlockChunk) {
      throw new MigstreamError('LIMIT', at, `QEMU's ${length}-byte block chunk exceeds the limit of ${ctx.limits.maxBlockChunk}`, { device });
    }
    if (device.length === 0) throw new MigstreamError('BAD_BLOCK_RECORD', at + 8, 'Error unknown block device: empty name');
    if (sector * 512 + length > Number.MAX_SAFE_INTEGER) {
      // No disk is that large, and byte offsets past 2^53 cannot even be represented.
      throw new MigstreamError('BAD_BLOCK_RECORD', at, `block chunk at sector ${sector} ends beyond 2^53 bytes`, { device });
    }
    if (!ctx.extensions.readBlockPayload(ctx, r, rec)) {
      const dataOffset = r.offset;
      const data = rec.zero ? EMPTY : r.bytes(length, length === BLK_CHUNK_SIZE ? 'a 1 MiB block chunk' : 'block chunk data');
      ctx.emit({ type: 'block-chunk', device, sector, length, zero: rec.zero, data, dataOffset, wireBytes: r.pos - start });
    }
  } else if (flags & BLK_PROGRESS) {
    // past 2^53, the low 32 bits of header >> 9: what QEMU's (int) cast prints, and a header transcode can write back
    ctx.emit({ type: 'block-progress', percent: huge ? (((hi & 0x1ff) << 23) | (lo >>> 9)) >>> 0 : sector });
  } else if (!(flags & BLK_EOS)) {
    throw new MigstreamError('BAD_BLOCK_RECORD', at, `Unknown block migration flags: 0x${flags.toString(16)}`);
  }
  if (!(flags & BLK_EOS)) return false;
  ctx.emit({ type: 'block-eos' });
  return true;
}
