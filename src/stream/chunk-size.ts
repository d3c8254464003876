import { VAR_CHUNK_MAX, VAR_CHUNK_MIN } from './constants.js';

/** A block-chunks chunk size: a power of two from 4 KiB to 1 MiB. */
export function checkChunkSize(size: number): void {
  if (!Number.isInteger(size) || size < VAR_CHUNK_MIN || size > VAR_CHUNK_MAX || (size & (size - 1)) !== 0) {
    throw new RangeError(`block chunk size must be a power of two from 4 KiB to 1 MiB, got ${size}`);
  }
}

/** Chunk compression needs variable-size chunks: QEMU's fixed 1 MiB chunks have no compressed form. */
export function checkChunkCompression(chunkSize: number | undefined, compress: boolean): void {
  if (compress && chunkSize === undefined) throw new RangeError("QEMU's 1 MiB chunks cannot be compressed: chunk compression needs a chunk size");
}
