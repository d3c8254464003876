import { isZeroPage } from '../codec/zero.js';
import { BLK_CHUNK_SIZE } from './constants.js';
import type { StreamWriter } from './encoder.js';
import type { BlockChunkEvent } from './events.js';

/**
 * Re-writes block chunks for the transcoder, in either direction:
 * - to variable-size chunks: each incoming chunk is cut at `chunkSize`
 *   boundaries, all-zero pieces become zero chunks;
 * - to QEMU's fixed 1 MiB chunks: variable-size chunks are applied to the
 *   1 MiB regions they fall in (kept in memory, as the receiver's disk would
 *   hold them), and every region touched goes out whole at the next block
 *   PROGRESS or EOS, in order, since QEMU cannot express a partial chunk.
 */
export class BlockRewriter {
  private readonly regions = new Map<string, Map<number, Uint8Array>>();
  private readonly dirty = new Map<string, Set<number>>();
  /** Set when the input declared variable-size chunks: then no 1 MiB chunk may bypass the regions. */
  inputVariable = false;

  constructor(
    private readonly enc: StreamWriter,
    private readonly chunkSize: number | undefined,
    private readonly diskSizes: Record<string, number>,
    /** Variable-size output: non-zero pieces go through compressChunk() (extension "chunk-compression"). */
    private readonly compress = false,
  ) {}

  chunk(ev: BlockChunkEvent): void {
    const start = ev.sector * 512;
    const size = this.diskSizes[ev.device];
    const length = size === undefined ? ev.length : Math.max(0, Math.min(ev.length, size - start));
    if (this.chunkSize !== undefined) {
      for (let at = 0; at < length; ) {
        const pieceEnd = Math.min(length, (Math.floor((start + at) / this.chunkSize) + 1) * this.chunkSize - start);
        const piece = ev.zero ? undefined : ev.data.subarray(at, pieceEnd);
        const sector = (start + at) / 512;
        if (piece === undefined || isZeroPage(piece)) this.enc.blockVarChunk(ev.device, sector, pieceEnd - at, undefined);
        else if (this.compress) this.enc.compressChunk(ev.device, sector, piece);
        else this.enc.blockVarChunk(ev.device, sector, pieceEnd - at, piece);
        at = pieceEnd;
      }
      return;
    }
    if (!this.inputVariable) {
      this.enc.blockChunk(ev.device, ev.sector, ev.zero ? undefined : ev.data); // QEMU's own chunk: verbatim
      return;
    }
    let regions = this.regions.get(ev.device);
    if (!regions) {
      regions = new Map();
      this.regions.set(ev.device, regions);
      this.dirty.set(ev.device, new Set());
    }
    for (let at = 0; at < ev.length; ) {
      const r = Math.floor((start + at) / BLK_CHUNK_SIZE);
      const inRegion = start + at - r * BLK_CHUNK_SIZE;
      const n = Math.min(ev.length - at, BLK_CHUNK_SIZE - inRegion);
      let buf = regions.get(r);
      if (!buf) {
        buf = new Uint8Array(BLK_CHUNK_SIZE);
        regions.set(r, buf);
      }
      if (ev.zero) buf.fill(0, inRegion, inRegion + n);
      else buf.set(ev.data.subarray(at, at + n), inRegion);
      this.dirty.get(ev.device)!.add(r);
      at += n;
    }
  }

  /** Writes the 1 MiB regions touched since the last flush. */
  flush(): void {
    for (const [device, set] of this.dirty) {
      const regions = this.regions.get(device)!;
      for (const r of [...set].sort((a, b) => a - b)) {
        const buf = regions.get(r)!;
        this.enc.blockChunk(device, r * (BLK_CHUNK_SIZE / 512), isZeroPage(buf) ? undefined : buf);
      }
      set.clear();
    }
  }
}
