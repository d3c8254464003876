import { MigstreamError } from '../../codec/errors.js';
import { concatBytes } from '../../codec/concat.js';
import type { BlockChunkEvent, EventHandler, PageEvent, StreamEvent } from '../events.js';
import type { DecompressResult } from './tasks.js';
import type { PagePool } from './pool.js';
import { Wakeup } from './wakeup.js';
import { compactQueue } from './compact.js';
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

interface Batch {
  codec: 'zlib' | 'lz4';
  sizes: number[];
  parts: Uint8Array[];
  bytes: number;
  /** Block chunks: each one's decompressed size (pages are all pageSize). */
  outSizes?: number[];
  /** Block chunks: where each lands in result.pages, and their total. */
  outStarts?: number[];
  outBytes?: number;
  result?: DecompressResult;
  error?: Error;
}

interface Entry {
  ev: StreamEvent;
  batch?: Batch;
  index?: number;
  /** Pages: the page's key for the per-page wait. */
  key?: string;
  /** Block chunks: the page units it counts in pagesInFlight. */
  units?: number;
}

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
  private readonly queue: Entry[] = [];
  private head = 0;
  private filling: Batch | undefined;
  private fillingChunks: Batch | undefined;
  private pageSize = 4096;
  /** Compressed pages not yet applied. */
  private pagesQueued = 0;
  /** Landing order: dispatched pages whose results have not landed, by page. */
  private readonly outstanding = new Map<string, Entry[]>();
  private outstandingCount = 0;
  private failure: Error | undefined;
  private readonly wakeup = new Wakeup();

  constructor(downstream: EventHandler, options: DecompressQueueOptions) {
    this.downstream = downstream;
    this.pool = options.pool;
    this.impl = options.impl ?? 'node';
    this.landing = options.order === 'landing';
    this.batchPages = options.batchPages ?? 64;
    this.maxInFlight = options.maxInFlight ?? 1024;
    this.barrier = options.unsafeNoBarrier !== true;
    this.pageWait = options.unsafeNoPageWait !== true;
  }

  get pagesInFlight(): number {
    return this.pagesQueued;
  }

  /** The decoder's handler. Borrowed bytes are copied only when the event has to wait. */
  handle = (ev: StreamEvent): void => {
    if (this.failure) return; // drain() and finish() report it; throwing here would turn it into a decoder error
    if (ev.type === 'manifest' && declaredEntry(ev.manifest, iterationDigests) !== undefined) {
      // Digests hash pages in send order: apply them in stream order (nothing is in flight before the manifest).
      this.landing = false;
    }
    if (ev.type === 'page' && ev.encoded) {
      const codec = ev.kind === 'lz4' ? 'lz4' : 'zlib';
      // one batch holds one codec: a stream switching codecs (never in practice) starts a new one
      if (this.filling && this.filling.codec !== codec) this.submit();
      this.pageSize = ev.pageSize;
      this.filling ??= { codec, sizes: [], parts: [], bytes: 0 };
      const b = this.filling;
      const data = ev.data.slice();
      this.add(b, data);
      this.queue.push({ ev: { ...ev, data }, batch: b, index: b.sizes.length - 1, key: pageKey(ev) });
      this.pagesQueued++;
      if (b.sizes.length === this.batchPages) this.submit();
      return;
    }
    if (ev.type === 'block-chunk' && ev.encoded) {
      // Chunks apply in stream order (never landing order): a batch of about batchPages pages' worth of output.
      const codec = ev.codec!;
      if (this.fillingChunks && this.fillingChunks.codec !== codec) this.submitChunks();
      this.fillingChunks ??= { codec, sizes: [], parts: [], bytes: 0, outSizes: [], outStarts: [], outBytes: 0 };
      const b = this.fillingChunks;
      const data = ev.data.slice();
      this.add(b, data);
      b.outSizes!.push(ev.length);
      b.outStarts!.push(b.outBytes!);
      b.outBytes! += ev.length;
      const units = this.units(ev.length);
      this.queue.push({ ev: { ...ev, data }, batch: b, index: b.sizes.length - 1, units });
      this.pagesQueued += units;
      if (b.outBytes! >= this.batchPages * this.pageSize) this.submitChunks();
      return;
    }
    if (this.head === this.queue.length && this.canPass(ev)) {
      this.downstream(ev);
      return;
    }
    this.queue.push({ ev: cloneEvent(ev) }); // events that wait lose their borrowed views
  };

  /** Waits until at most `limit` compressed pages are pending. Throws the first failure. */
  async drain(limit = this.maxInFlight): Promise<void> {
    this.pump();
    while (!this.failure && (this.pagesQueued > limit || (limit === 0 && this.head < this.queue.length))) {
      this.submit();
      this.submitChunks();
      await this.wakeup.wait();
      this.pump();
    }
    if (this.failure) throw this.failure;
  }

  /** Decompresses and delivers everything queued (call after decoder.end()). */
  async finish(): Promise<void> {
    this.submit();
    this.submitChunks();
    await this.drain(0);
  }

  private canPass(ev: StreamEvent): boolean {
    if (this.outstandingCount === 0) return true;
    if (ev.type === 'iteration-end') return !this.barrier;
    if (ev.type === 'page') return !this.pageWait || !this.outstanding.has(pageKey(ev));
    return true;
  }

  private add(b: Batch, data: Uint8Array): void {
    b.parts.push(data);
    b.sizes.push(data.length);
    b.bytes += data.length;
  }

  /** A chunk of `length` bytes counts as this many pages against maxInFlight. */
  private units(length: number): number {
    return Math.max(1, Math.ceil(length / this.pageSize));
  }

  private submit(): void {
    const b = this.filling;
    if (!b) return;
    this.filling = undefined;
    this.dispatch(b);
  }

  private submitChunks(): void {
    const b = this.fillingChunks;
    if (!b) return;
    this.fillingChunks = undefined;
    this.dispatch(b);
  }

  private dispatch(b: Batch): void {
    const data = concatBytes(b.parts);
    b.parts = [];
    const sizes = Uint32Array.from(b.sizes);
    const outSizes = b.outSizes && Uint32Array.from(b.outSizes);
    this.pool.run({ op: 'decompress', codec: b.codec, impl: this.impl, pageSize: this.pageSize, sizes, data, outSizes }, [data.buffer as ArrayBuffer]).then(
      (r) => {
        b.result = r as DecompressResult;
        this.landed(b);
      },
      (e: unknown) => {
        b.error = e as Error;
        this.fail(e as Error);
      },
    );
  }

  private fail(e: Error): void {
    this.failure ??= e;
    this.wakeup.notify();
  }

  /** A batch's results arrived: in landing order its dispatched pages apply now. */
  private landed(b: Batch): void {
    try {
      if (this.landing) {
        for (const [key, list] of this.outstanding) {
          const keep = list.filter((e) => e.batch !== b);
          for (const e of list) if (e.batch === b) this.apply(e);
          this.outstandingCount -= list.length - keep.length;
          if (keep.length === 0) this.outstanding.delete(key);
          else this.outstanding.set(key, keep);
        }
      }
      this.pump();
    } catch (e) {
      this.fail(e as Error);
    }
    this.wakeup.notify();
  }

  /** Delivers from the head of the queue while the ordering rules allow. */
  private pump(): void {
    const q = this.queue;
    try {
      while (this.head < q.length && !this.failure) {
        const e = q[this.head]!;
        if (e.batch && e.units !== undefined) {
          if (!e.batch.result) break;
          this.applyChunk(e);
        } else if (e.batch) {
          if (this.landing) {
            // dispatch: like handing the page to a decompress thread; it applies when its result lands
            if (this.pageWait && this.outstanding.has(e.key!)) break; // an earlier copy of this page is still decompressing
            if (e.batch.result) this.apply(e);
            else {
              const list = this.outstanding.get(e.key!);
              if (list) list.push(e);
              else this.outstanding.set(e.key!, [e]);
              this.outstandingCount++;
            }
          } else {
            if (!e.batch.result) break;
            this.apply(e);
          }
        } else {
          if (!this.canPass(e.ev)) break;
          this.downstream(e.ev);
        }
        q[this.head++] = undefined as unknown as Entry;
      }
    } catch (err) {
      this.fail(err as Error);
    }
    this.head = compactQueue(q, this.head);
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
    this.pagesQueued--;
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
    this.pagesQueued -= e.units!;
    this.downstream({ ...ev, data: r.pages.subarray(start, start + ev.length), encoded: false });
  }
}

function pageKey(ev: PageEvent): string {
  return `${ev.block.idstr}\u0000${ev.offset}`;
}
