import { HierarchicalBitmap } from '../codec/hbitmap.js';
import { isZeroPage } from '../codec/zero.js';
import { BLK_CHUNK_SIZE } from './constants.js';
import { checkChunkCompression, checkChunkSize } from './chunk-size.js';
import type { DiskSource, Extent } from './disk-source.js';
import type { StreamWriter } from './encoder.js';

/** What the sender writes through: StreamEncoder, or the pooled writer (its bytesWritten settles once drained). */
export type BlockWriter = Pick<StreamWriter, 'blockChunk' | 'blockVarChunk' | 'compressChunk' | 'blockProgress'> & { readonly bytesWritten: number };

export interface BlockSenderOptions {
  /** Send all-zero chunks as ZERO_BLOCK records (QEMU's zero-blocks capability). */
  zeroBlocks?: boolean;
  /**
   * Chunk size of our "block-chunks" extension: a power of two from 4 KiB to
   * 1 MiB, each record with its exact length. Undefined: QEMU's fixed 1 MiB
   * chunks, the last one padded.
   */
  chunkSize?: number;
  /**
   * Compress non-zero variable-size chunks through the writer's compressChunk()
   * (extension "chunk-compression"); needs `chunkSize`.
   */
  compress?: boolean;
}

export interface BlockIterationStats {
  chunks: number;
  zeroChunks: number;
  /** Block-record bytes written in the iteration (headers included). */
  bytes: number;
  /** Non-zero chunks handed to the compressor (one that does not shrink still goes out plain). */
  compressedChunks: number;
}

/** Chunk bytes between two pauses of the stepwise sends. */
const PAUSE_BYTES = 256 * 1024;

function runSteps<T>(steps: Generator<unknown, T, void>): T {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/**
 * The block-migration sender: a bulk pass over every chunk of every disk,
 * then the chunks written since, found through a hierarchical dirty bitmap
 * per disk. QEMU's format by default; variable-size chunks on request.
 */
export class BlockSender {
  private readonly dirty: HierarchicalBitmap[];
  private readonly buf = new Uint8Array(BLK_CHUNK_SIZE);
  private readonly zeroBlocks: boolean;
  private readonly chunk: number;
  private readonly variable: boolean;
  private readonly compress: boolean;
  /** writer.bytesWritten when the last iteration began. */
  private startBytes = 0;
  readonly history: BlockIterationStats[] = [];

  constructor(
    private readonly enc: BlockWriter,
    readonly disks: DiskSource[],
    options: BlockSenderOptions = {},
  ) {
    this.zeroBlocks = options.zeroBlocks ?? false;
    this.variable = options.chunkSize !== undefined;
    this.chunk = options.chunkSize ?? BLK_CHUNK_SIZE;
    this.compress = options.compress ?? false;
    checkChunkCompression(options.chunkSize, this.compress);
    checkChunkSize(this.chunk);
    this.dirty = disks.map((d) => new HierarchicalBitmap(Math.ceil(d.size / this.chunk)));
  }

  /** Iteration 0: every chunk, with PROGRESS records as the percentage grows (as QEMU does). */
  bulk(): BlockIterationStats {
    return runSteps(this.bulkSteps());
  }

  /** bulk(), pausing after about every 256 KiB of chunks: where a pooled driver waits for room. */
  *bulkSteps(): Generator<'pages', BlockIterationStats, void> {
    const stats = this.begin();
    const total = this.disks.reduce((n, d) => n + Math.ceil(d.size / this.chunk), 0);
    let done = 0;
    let shown = -1;
    let since = 0;
    for (let k = 0; k < this.disks.length; k++) {
      for (let chunk = 0; chunk * this.chunk < this.disks[k]!.size; chunk++) {
        const percent = Math.floor((done * 100) / total);
        if (percent !== shown) {
          this.enc.blockProgress(percent);
          shown = percent;
        }
        since += this.sendChunk(k, chunk, stats);
        done++;
        if (since >= PAUSE_BYTES) {
          since = 0;
          yield 'pages';
        }
      }
    }
    return this.end(stats);
  }

  /** Marks the chunks under the written extents of disk `k` dirty. */
  markDirty(k: number, extents: Extent[]): void {
    const map = this.dirty[k]!;
    for (const e of extents) {
      for (let c = Math.floor(e.offset / this.chunk); c * this.chunk < e.offset + e.length; c++) map.set(c);
    }
  }

  /** Sends and clears every dirty chunk; `complete` adds QEMU's final PROGRESS 100. */
  sendDirty(complete = false): BlockIterationStats {
    return runSteps(this.sendDirtySteps(complete));
  }

  /** sendDirty(), pausing like bulkSteps(). */
  *sendDirtySteps(complete = false): Generator<'pages', BlockIterationStats, void> {
    const stats = this.begin();
    let since = 0;
    for (let k = 0; k < this.dirty.length; k++) {
      const map = this.dirty[k]!;
      for (let c = map.findNext(0); c >= 0; c = map.findNext(c + 1)) {
        since += this.sendChunk(k, c, stats);
        map.clear(c);
        if (since >= PAUSE_BYTES) {
          since = 0;
          yield 'pages';
        }
      }
    }
    if (complete) this.enc.blockProgress(100);
    return this.end(stats);
  }

  /** Sends one chunk; returns the bytes it covers. */
  private sendChunk(k: number, chunk: number, stats: BlockIterationStats): number {
    const disk = this.disks[k]!;
    const start = chunk * this.chunk;
    const len = Math.min(this.chunk, disk.size - start);
    if (this.variable) {
      const data = this.buf.subarray(0, len);
      disk.read(start, data);
      // Zero chunks always: the explicit length makes them cheap and exact.
      const zero = isZeroPage(data);
      if (zero) {
        this.enc.blockVarChunk(disk.device, start / 512, len, undefined);
        stats.zeroChunks++;
      } else if (this.compress) {
        this.enc.compressChunk(disk.device, start / 512, data);
        stats.compressedChunks++;
      } else {
        this.enc.blockVarChunk(disk.device, start / 512, len, data);
      }
    } else {
      // QEMU always sends 1 MiB; the receiver clips the last chunk to its own disk size.
      this.buf.fill(0, len);
      disk.read(start, this.buf.subarray(0, len));
      if (this.zeroBlocks && isZeroPage(this.buf)) {
        this.enc.blockChunk(disk.device, start / 512, undefined);
        stats.zeroChunks++;
      } else {
        this.enc.blockChunk(disk.device, start / 512, this.buf);
      }
    }
    stats.chunks++;
    return len;
  }

  private begin(): BlockIterationStats {
    this.startBytes = this.enc.bytesWritten;
    return { chunks: 0, zeroChunks: 0, bytes: 0, compressedChunks: 0 };
  }

  private end(stats: BlockIterationStats): BlockIterationStats {
    this.history.push(stats);
    this.settle();
    return stats;
  }

  /**
   * Sets the last iteration's `bytes` from the writer's count. A pooled writer
   * counts a record once it is written: drain it before an iteration begins
   * and call this once it has drained again.
   */
  settle(): void {
    const last = this.history.at(-1);
    if (last) last.bytes = this.enc.bytesWritten - this.startBytes;
  }
}
