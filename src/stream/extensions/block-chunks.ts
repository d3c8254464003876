import type { ByteReader } from '../../codec/byte-reader.js';
import type { ByteWriter } from '../../codec/byte-writer.js';
import { MigstreamError } from '../../codec/errors.js';
import { BLK_DEVICE_BLOCK, BLK_VAR_CHUNK, BLK_ZERO_BLOCK, VAR_CHUNK_MAX } from '../constants.js';
import type { ExtensionEntry } from '../manifest.js';
import type { BlockHeader, Extension, RecordContext } from './extension.js';

/** Parameters of the "block-chunks" extension (variable-size block-migration chunks). */
export interface BlockChunksParams {
  /** Block record flag that marks a chunk with an explicit be32 length (0x10). */
  flag: number;
  /** Chunk size the writer used: a power of two from 4 KiB to 1 MiB (the last chunk of a disk may be shorter). */
  chunkSize: number;
}

const NAME = 'block-chunks';

export function blockChunksEntry(chunkSize: number): ExtensionEntry {
  return { name: NAME, version: 1, params: { flag: BLK_VAR_CHUNK, chunkSize } };
}

/** Variable-size block chunks: block flag 0x10, a be32 length after the device name, no padding to 1 MiB. */
export const blockChunks: Extension = {
  name: NAME,
  version: 1,
  block: { flag: BLK_VAR_CHUNK, phase: 'header', what: 'a variable-size chunk' },
  defaultEntry: () => blockChunksEntry(VAR_CHUNK_MAX),
  declare: () => ({ readBlockHeader: readChunkLength }),
};

function readChunkLength(ctx: RecordContext, r: ByteReader, rec: BlockHeader): void {
  const lenAt = r.offset;
  const length = r.be32('a block chunk length');
  const device = rec.device;
  if (length === 0 || length > VAR_CHUNK_MAX || length % 512 !== 0) {
    throw new MigstreamError('BAD_BLOCK_RECORD', lenAt, `expected a chunk length of 512..${VAR_CHUNK_MAX} bytes in whole sectors, found ${length}`, {
      device,
    });
  }
  if (!rec.zero && length > ctx.limits.maxBlockChunk) {
    throw new MigstreamError('LIMIT', lenAt, `block chunk of ${length} bytes exceeds the limit of ${ctx.limits.maxBlockChunk}`, { device });
  }
  rec.length = length;
  rec.explicitLength = true;
}

/** A variable-size chunk record up to its payload: header word (plus `extraFlags`), device, be32 length. */
export function writeVarChunk(w: ByteWriter, device: string, sector: number, length: number, zero: boolean, extraFlags = 0): void {
  w.be64(sector * 512 + BLK_DEVICE_BLOCK + BLK_VAR_CHUNK + extraFlags + (zero ? BLK_ZERO_BLOCK : 0))
    .str8(device)
    .be32(length);
}
