import '../../node/install.js'; // tasks run where Node's codecs are (worker threads, the inline pool)
import { codecSet } from '../codec-table.js';
import { decompressBatch, decompressChunks, lz4CompressorName, pageCompressor, type CompressionCodec, type ResolvedSpec } from '../page-codecs.js';

/**
 * The work a pool does, as plain data that crosses a worker boundary: a
 * batch of pages in one buffer, never one message per page. Workers return
 * buffers only; the caller's ordered writer or applier owns the output.
 */
export interface CompressTask {
  op: 'compress';
  spec: ResolvedSpec;
  pageSize: number;
  /** The items back to back: count × pageSize bytes, or the `sizes` below. */
  pages: Uint8Array;
  /** Items of other sizes (block chunks): each one's length; absent, every item is one page. */
  sizes?: Uint32Array;
  /** Test hook: the worker fails on purpose ("throw") or exits ("exit"). */
  sabotage?: 'throw' | 'exit';
}

export interface CompressResult {
  op: 'compress';
  /** Compressed size of each page. */
  sizes: Uint32Array;
  /** The compressed pages back to back. */
  data: Uint8Array;
  /** The task's pages, handed back (transferred both ways, never copied). */
  pages: Uint8Array;
}

export interface DecompressTask {
  op: 'decompress';
  codec: CompressionCodec;
  impl: 'node' | 'portable';
  pageSize: number;
  /** Compressed size of each block. */
  sizes: Uint32Array;
  /** The blocks back to back. */
  data: Uint8Array;
  /** Block chunks: the exact decompressed size of each block; absent, every block is one page. */
  outSizes?: Uint32Array;
  /** Test hook: the worker fails on purpose ("throw") or exits ("exit"). */
  sabotage?: 'throw' | 'exit';
}

export interface DecompressResult {
  op: 'decompress';
  /** count × pageSize bytes, or the outSizes back to back. */
  pages: Uint8Array;
  /** Inflated length of each page (a zlib page may be short), or the task's outSizes. */
  lengths: Uint32Array;
  /** The first block that failed to decompress, and why. */
  error?: { index: number; message: string };
}

export type PoolTask = CompressTask | DecompressTask;
export type PoolResult = CompressResult | DecompressResult;

const compressors = new Map<string, (page: Uint8Array) => Uint8Array>();

/** Runs one task in the current thread (a worker, or the inline pool). */
export function runTask(task: PoolTask): PoolResult {
  if (task.sabotage === 'throw') throw new Error(`sabotaged ${task.op} task (test hook)`);
  if (task.sabotage === 'exit') process.exit(7);
  if (task.op === 'compress') {
    const key = `${task.spec.codec}/${task.spec.level}/${task.spec.acceleration}/${task.spec.impl}`;
    let compress = compressors.get(key);
    if (!compress) {
      compress = pageCompressor(task.spec);
      compressors.set(key, compress);
    }
    const batch = task.spec.codec === 'lz4' && !task.sizes ? codecSet(task.spec.impl).lz4CompressPages : undefined;
    if (batch) {
      // the codec set's contiguous form: one call for the batch, its blocks already back to back
      const { data, sizes } = batch(task.pages, task.pageSize, lz4CompressorName(task.spec) === 'lz4_flex' ? undefined : task.spec.acceleration);
      return { op: 'compress', sizes, data, pages: task.pages };
    }
    let parts: Uint8Array[];
    if (task.sizes) {
      parts = [];
      let at = 0;
      for (const size of task.sizes) {
        parts.push(compress(task.pages.subarray(at, at + size)));
        at += size;
      }
    } else {
      const count = task.pages.length / task.pageSize;
      parts = Array.from({ length: count }, (_, i) => compress!(task.pages.subarray(i * task.pageSize, (i + 1) * task.pageSize)));
    }
    const sizes = new Uint32Array(parts.length);
    let total = 0;
    parts.forEach((c, i) => {
      sizes[i] = c.length;
      total += c.length;
    });
    const data = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      data.set(p, at);
      at += p.length;
    }
    return { op: 'compress', sizes, data, pages: task.pages };
  }
  const unbatch = task.codec === 'lz4' && !task.outSizes ? codecSet(task.impl).lz4DecompressPages : undefined;
  if (unbatch) {
    // one call for the batch, straight from the blocks back to back
    const pages = new Uint8Array(task.sizes.length * task.pageSize);
    const lengths = new Uint32Array(task.sizes.length).fill(task.pageSize);
    const error = unbatch(task.data, task.sizes, task.pageSize, pages);
    return error ? { op: 'decompress', pages, lengths, error } : { op: 'decompress', pages, lengths };
  }
  const blocks: Uint8Array[] = [];
  let at = 0;
  for (const size of task.sizes) {
    blocks.push(task.data.subarray(at, at + size));
    at += size;
  }
  if (task.outSizes) {
    const pages = new Uint8Array(task.outSizes.reduce((n, s) => n + s, 0));
    const error = decompressChunks(task.codec, task.impl, blocks, task.outSizes, pages);
    return error ? { op: 'decompress', pages, lengths: task.outSizes, error } : { op: 'decompress', pages, lengths: task.outSizes };
  }
  const pages = new Uint8Array(blocks.length * task.pageSize);
  const { lengths, error } = decompressBatch(task.codec, task.impl, blocks, task.pageSize, pages);
  return error ? { op: 'decompress', pages, lengths, error } : { op: 'decompress', pages, lengths };
}

/** The buffers a result can hand over without copying. */
export function transferables(r: PoolResult): ArrayBuffer[] {
  const list = r.op === 'compress' ? [r.sizes.buffer, r.data.buffer, r.pages.buffer] : [r.pages.buffer, r.lengths.buffer];
  return list.filter((b): b is ArrayBuffer => b instanceof ArrayBuffer);
}
