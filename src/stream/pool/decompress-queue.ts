import { MigstreamError } from '../../codec/errors.js';
import { concatBytes } from '../../codec/concat.js';
import type { BlockChunkEvent, EventHandler, PageEvent, StreamEvent } from '../events.js';
import type { DecompressResult } from './tasks.js';
import type { PagePool } from './pool.js';
import { type Batch, OrderedBatchQueue } from './ordered-batches.js';
import { cloneEvent } from '../clone-event.js';
import { declaredEntry } from '../extensions/extension.js';
import { iterationDigests } from '../extensions/iteration-digests.js';

export interface DecompressQueueOptions {
  pool: PagePool;
  /** Decompressors the workers use: "node" (node:zlib, lz4-wasm) or "portable" (fflate, migstream's LZ4). Default "node". */
  impl?: 'node' | 'portable';
  /**
   * "stream" (default): events reach the handler exactly in stream order;
   * decompression only runs ahead on the workers. "landing": like QEMU's
   * decompress threads, an inflated page is applied as soon as its result
   * lands, possibly after later records of the same iteration, so the
   * barrier below is what keeps RAM right. A stream declaring iteration
   * digests is always delivered in stream order: its digests are over the
   * order pages were sent.
   */
  order?: 'stream' | 'landing';
  /** Compressed pages per batch sent to a worker. Default 64. */
  batchPages?: number;
  /** Most compressed pages queued or decompressing before drain() waits. Default 1024. */
  maxInFlight?: number;
  /**
   * TEST ONLY. Lets the iteration-end event pass while pages of the
   * iteration are still decompressing, to show that without the barrier
   * what a sink sees at an iteration end is wrong. Never set it otherwise.
   */
  unsafeNoBarrier?: boolean;
  /**
   * TEST ONLY. Lets a later record for a page pass while an earlier copy of
   * the page is still decompressing, to show that RAM then goes wrong.
   * Never set it otherwise.
   */
  unsafeNoPageWait?: boolean;
}

/** Compressed pages or block chunks for one worker task, all of one codec. */
interface DecompressBatch extends Batch {
  codec: 'zlib' | 'lz4';
  sizes: number[];
  parts: Uint8Array[];
  /** Block chunks: each one's decompressed size (pages are all pageSize). */
  outSizes?: number[];
  /** Block chunks: where each lands in result.pages, and their total. */
  outStarts?: number[];
  outBytes?: number;
  result?: DecompressResult;
}

interface Entry {
  ev: StreamEvent;
  batch?: DecompressBatch;
  index?: number;
  /** Pages: the page's key for the per-page wait. */
  key?: string;
  /** Block chunks: the page units it counts against maxInFlight. */
  units?: number;
}

const PAGES = 0;
const CHUNKS = 1;

/**
 * The ordered applier of the pooled decode path. The decoder (with
 * `decompress: "defer"`) feeds it events synchronously; compressed pages go
 * to the pool in batches as they arrive, and events leave for `downstream`
 * in stream order, with one freedom in "landing" order: an inflated page may
 * land after later events of its own iteration. Two rules keep that safe,
 * the ones QEMU's receiver lacks or only half has (spec §6.3):
 *   - per page: a later record for a page whose decompression is still
 *     outstanding waits for it;
 *   - the barrier: the iteration-end event (RAM EOS) waits until every
 *     decompression of the iteration has landed, so nothing of iteration N
 *     is applied after anything of iteration N+1.
 */
export class DecompressQueue {
  private readonly downstream: EventHandler;
  private readonly pool: PagePool;
  private readonly impl: 'node' | 'portable';
  /** Landing order; switched off for a stream with iteration digests (they are over send order). */
  private landing: boolean;
  private readonly batchPages: number;
  private readonly maxInFlight: number;
  private readonly barrier: boolean;
  private readonly pageWait: boolean;
  private readonly q: OrderedBatchQueue<Entry, DecompressBatch>;
  private pageSize = 4096;
  /** Landing order: dispatched pages whose results have not landed, by page. */
  private readonly outstanding = new Map<string, Entry[]>();
  private outstandingCount = 0;

  constructor(downstream: EventHandler, options: DecompressQueueOptions) {
    this.downstream = downstream;
    this.pool = options.pool;
    this.impl = options.impl ?? 'node';
    this.landing = options.order === 'landing';
    this.batchPages = options.batchPages ?? 64;
    this.maxInFlight = options.maxInFlight ?? 1024;
    this.barrier = options.unsafeNoBarrier !== true;
    this.pageWait = options.unsafeNoPageWait !== true;
    this.q = new OrderedBatchQueue<Entry, DecompressBatch>(
      { deliver: (e) => this.deliver(e), dispatch: (b) => this.dispatch(b), landed: (b) => this.landed(b) },
      2,
    );
  }

  /** Compressed pages (block chunks in page units) not yet applied. */
  get pagesInFlight(): number {
    return this.q.units;
  }

  /** The decoder's handler. Borrowed bytes are copied only when the event has to wait. */
  handle = (ev: StreamEvent): void => {
    const q = this.q;
    if (q.failure) return; // drain() and finish() report it; throwing here would turn it into a decoder error
    if (ev.type === 'manifest' && declaredEntry(ev.manifest, iterationDigests) !== undefined) {
      // Digests hash pages in send order: apply them in stream order (nothing is in flight before the manifest).
      this.landing = false;
    }
    if (ev.type === 'page' && ev.encoded) {
      const codec = ev.kind === 'lz4' ? 'lz4' : 'zlib';
      // one batch holds one codec: a stream switching codecs (never in practice) starts a new one
      if (q.current(PAGES) && q.current(PAGES)!.codec !== codec) q.submit(PAGES);
      this.pageSize = ev.pageSize;
      const b = q.batch(PAGES, () => ({ codec, sizes: [], parts: [], units: 0 }));
      const data = add(b, ev.data);
      b.units++;
      q.push({ ev: { ...ev, data }, batch: b, index: b.sizes.length - 1, key: pageKey(ev) }, 1);
      if (b.sizes.length === this.batchPages) q.submit(PAGES);
      return;
    }
    if (ev.type === 'block-chunk' && ev.encoded) {
      // Chunks apply in stream order (never landing order): a batch of about batchPages pages' worth of output.
      const codec = ev.codec!;
      if (q.current(CHUNKS) && q.current(CHUNKS)!.codec !== codec) q.submit(CHUNKS);
      const b = q.batch(CHUNKS, () => ({ codec, sizes: [], parts: [], units: 0, outSizes: [], outStarts: [], outBytes: 0 }));
      const data = add(b, ev.data);
      b.outSizes!.push(ev.length);
      b.outStarts!.push(b.outBytes!);
      b.outBytes! += ev.length;
      const units = Math.max(1, Math.ceil(ev.length / this.pageSize));
      b.units += units;
      q.push({ ev: { ...ev, data }, batch: b, index: b.sizes.length - 1, units }, units);
      if (b.outBytes! >= this.batchPages * this.pageSize) q.submit(CHUNKS);
      return;
    }
    if (q.idle && this.canPass(ev)) {
      this.downstream(ev);
      return;
    }
    q.push({ ev: cloneEvent(ev) }); // events that wait lose their borrowed views
  };

  /** Waits until at most `limit` compressed pages are pending. Throws the first failure. */
  drain(limit = this.maxInFlight): Promise<void> {
    return this.q.drain(limit);
  }

  /** Decompresses and delivers everything queued (call after decoder.end()). */
  finish(): Promise<void> {
    return this.q.finish();
  }

  private canPass(ev: StreamEvent): boolean {
    if (this.outstandingCount === 0) return true;
    if (ev.type === 'iteration-end') return !this.barrier;
    if (ev.type === 'page') return !this.pageWait || !this.outstanding.has(pageKey(ev));
    return true;
  }

  private dispatch(b: DecompressBatch): Promise<void> {
    const data = concatBytes(b.parts);
    b.parts = [];
    const sizes = Uint32Array.from(b.sizes);
    const outSizes = b.outSizes && Uint32Array.from(b.outSizes);
    const task = { op: 'decompress' as const, codec: b.codec, impl: this.impl, pageSize: this.pageSize, sizes, data, outSizes };
    return this.pool.run(task, [data.buffer as ArrayBuffer]).then((r) => {
      b.result = r as DecompressResult;
    });
  }

  /** A batch's results arrived: in landing order its dispatched pages apply now. */
  private landed(b: DecompressBatch): void {
    if (!this.landing) return;
    for (const [key, list] of this.outstanding) {
      const keep = list.filter((e) => e.batch !== b);
      for (const e of list) if (e.batch === b) this.apply(e);
      this.outstandingCount -= list.length - keep.length;
      if (keep.length === 0) this.outstanding.delete(key);
      else this.outstanding.set(key, keep);
    }
  }

  /** Delivers the head entry if the ordering rules allow. */
  private deliver(e: Entry): boolean {
    if (e.batch && e.units !== undefined) {
      if (!e.batch.result) return false;
      this.applyChunk(e);
    } else if (e.batch) {
      if (this.landing) {
        // dispatch: like handing the page to a decompress thread; it applies when its result lands
        if (this.pageWait && this.outstanding.has(e.key!)) return false; // an earlier copy of this page is still decompressing
        if (e.batch.result) this.apply(e);
        else {
          const list = this.outstanding.get(e.key!);
          if (list) list.push(e);
          else this.outstanding.set(e.key!, [e]);
          this.outstandingCount++;
        }
      } else {
        if (!e.batch.result) return false;
        this.apply(e);
      }
    } else {
      if (!this.canPass(e.ev)) return false;
      this.downstream(e.ev);
    }
    return true;
  }

  /** Hands one inflated page downstream, or fails with the worker's decompression error at the page's offset. */
  private apply(e: Entry): void {
    const ev = e.ev as PageEvent;
    const r = e.batch!.result!;
    const i = e.index!;
    if (r.error && r.error.index === i) {
      const what = ev.kind === 'lz4' ? 'LZ4 page failed to decompress' : 'decompress data failed';
      throw new MigstreamError('DECOMPRESS', ev.dataOffset, `${what}: ${r.error.message}`, { section: 'ram', ramBlock: ev.block.idstr });
    }
    if (r.error && r.error.index < i) return; // the batch failed earlier: that page reports it
    const start = i * ev.pageSize;
    const data = r.pages.subarray(start, start + r.lengths[i]!);
    this.q.settle(1);
    this.downstream({ ...ev, data, encoded: false });
  }

  /** Hands one decompressed block chunk downstream, or fails at its payload's offset. */
  private applyChunk(e: Entry): void {
    const ev = e.ev as BlockChunkEvent;
    const b = e.batch!;
    const r = b.result!;
    const i = e.index!;
    if (r.error && r.error.index === i) {
      throw new MigstreamError('DECOMPRESS', ev.dataOffset, `${ev.codec} chunk failed to decompress: ${r.error.message}`, {
        section: 'block',
        device: ev.device,
      });
    }
    if (r.error && r.error.index < i) return; // the batch failed earlier: that chunk reports it
    const start = b.outStarts![i]!;
    this.q.settle(e.units!);
    this.downstream({ ...ev, data: r.pages.subarray(start, start + ev.length), encoded: false });
  }
}

/** Adds a copy of `bytes` (the decoder's are borrowed) to the batch and returns it. */
function add(b: DecompressBatch, bytes: Uint8Array): Uint8Array {
  const data = bytes.slice();
  b.parts.push(data);
  b.sizes.push(data.length);
  return data;
}

function pageKey(ev: PageEvent): string {
  return `${ev.block.idstr}\u0000${ev.offset}`;
}
