import { StreamEncoder, type EncoderOptions, type StreamWriter } from '../encoder.js';
import type { RamBlockInfo, SectionInfo } from '../events.js';
import type { ResolvedSpec } from '../page-codecs.js';
import type { CompressResult } from './tasks.js';
import type { PagePool } from './pool.js';
import { type Batch, OrderedBatchQueue } from './ordered-batches.js';
import { isThenable } from './thenable.js';

export interface PooledEncoderOptions extends Omit<EncoderOptions, 'compressor' | 'chunkCompressor'> {
  /** How compressPage() compresses; undefined: compressPage() is not available. */
  spec?: ResolvedSpec;
  /** How compressChunk() compresses block chunks (extension "chunk-compression"); undefined: not available. */
  chunkSpec?: ResolvedSpec;
  pool: PagePool;
  /** Pages per batch sent to a worker. Default 64. */
  batchPages?: number;
  /** Most pages compressed or waiting to be written before drain() waits. Default 1024. */
  maxInFlight?: number;
}

/** Pages (all pageSize) or block chunks (any size) sent to a worker in one buffer. */
interface CompressBatch extends Batch {
  kind: 'pages' | 'chunks';
  /** The items back to back; for pages preallocated to a full batch. */
  pages: Uint8Array;
  count: number;
  /** Bytes used in `pages`. */
  used: number;
  /** chunks: each item's size. */
  sizes: number[];
  /** Records of the batch written so far: at `count` its buffer goes back to the free list. */
  written?: number;
  result?: CompressResult;
  /** Start of each item's payload in result.data. */
  starts?: number[];
}

type Op =
  | { call: (enc: StreamEncoder) => void }
  | { batch: CompressBatch; index: number; idstr: string; offset: number }
  | { batch: CompressBatch; index: number; device: string; sector: number; at: number; size: number };

const PAGES = 0;
const CHUNKS = 1;

/**
 * A StreamWriter whose compressPage() hands pages to a worker pool in
 * batches while every record still goes out in call order: calls queue up
 * behind the oldest page not yet compressed and run on one StreamEncoder
 * when it is done. The bytes are therefore the same for any number of
 * workers (and the same as StreamEncoder with the same compressor).
 *
 * The writer methods are synchronous, as the transcoder and RAM sender call
 * them; the async driver awaits drain() between input pieces, which bounds
 * pages in flight by `maxInFlight` and waits for a slow sink.
 */
export class PooledEncoder implements StreamWriter {
  readonly pageSize: number;
  private readonly enc: StreamEncoder;
  private readonly spec: ResolvedSpec | undefined;
  private readonly chunkSpec: ResolvedSpec | undefined;
  private readonly pool: PagePool;
  private readonly batchPages: number;
  private readonly maxInFlight: number;
  private readonly q: OrderedBatchQueue<Op, CompressBatch>;
  /** Mirrors the encoder's CONTINUE state at enqueue time (the encoder's lags behind the queue). */
  private lastBlock: string | undefined;
  private readonly sinkWrites: Promise<void>[] = [];
  /**
   * Batch input buffers whose records are written, for reuse: a fresh 256 KiB
   * buffer per batch (zeroed, then collected) costs the main thread several
   * times the round trip itself (bench/pool.bench.mjs, "batch buffers").
   */
  private readonly freeBuffers: ArrayBuffer[] = [];

  constructor(sink: (chunk: Uint8Array) => void | Promise<void>, options: PooledEncoderOptions) {
    this.pageSize = options.pageSize ?? 4096;
    this.spec = options.spec;
    this.chunkSpec = options.chunkSpec;
    this.pool = options.pool;
    this.batchPages = options.batchPages ?? 64;
    this.maxInFlight = options.maxInFlight ?? 1024;
    this.q = new OrderedBatchQueue<Op, CompressBatch>({ deliver: (op) => this.deliver(op), dispatch: (b) => this.dispatch(b) }, 2);
    this.enc = new StreamEncoder(
      (chunk) => {
        const p = sink(chunk);
        if (isThenable(p)) this.sinkWrites.push(Promise.resolve(p).then(undefined, (e: unknown) => this.q.fail(e as Error)));
      },
      { pageSize: this.pageSize, chunkSize: options.chunkSize },
    );
  }

  /** Pages handed to compressPage() whose records are not written yet. */
  get pagesInFlight(): number {
    return this.q.units;
  }

  get bytesWritten(): number {
    return this.enc.bytesWritten;
  }

  // ---- the writer surface: run now when nothing is queued, else queue (copying borrowed bytes)

  private op(call: (enc: StreamEncoder) => void): this {
    if (this.q.failure) return this; // drain() and finish() report it
    if (this.q.idle) call(this.enc);
    else this.q.push({ call });
    return this;
  }

  private copy(b: Uint8Array): Uint8Array {
    return this.q.idle ? b : b.slice();
  }

  continues(idstr: string): boolean {
    return idstr === this.lastBlock;
  }

  header(): this {
    return this.op((e) => e.header());
  }
  raw(bytes: Uint8Array): this {
    const b = this.copy(bytes);
    return this.op((e) => e.raw(b));
  }
  sectionStart(s: SectionInfo): this {
    return this.op((e) => e.sectionStart(s));
  }
  sectionPart(id: number): this {
    return this.op((e) => e.sectionPart(id));
  }
  sectionEnd(id: number): this {
    return this.op((e) => e.sectionEnd(id));
  }
  footer(id: number): this {
    return this.op((e) => e.footer(id));
  }
  command(command: number, payload: Uint8Array): this {
    const b = this.copy(payload);
    return this.op((e) => e.command(command, b));
  }
  manifest(payload: Uint8Array): this {
    const b = this.copy(payload);
    return this.op((e) => e.manifest(b));
  }
  memSize(blocks: RamBlockInfo[], ignoreShared = false): this {
    this.lastBlock = undefined;
    return this.op((e) => e.memSize(blocks, ignoreShared));
  }
  zeroPage(idstr: string, offset: number): this {
    this.lastBlock = idstr;
    return this.op((e) => e.zeroPage(idstr, offset));
  }
  page(idstr: string, offset: number, data: Uint8Array): this {
    this.lastBlock = idstr;
    const b = this.copy(data);
    return this.op((e) => e.page(idstr, offset, b));
  }
  xbzrlePage(idstr: string, offset: number, encoded: Uint8Array): this {
    this.lastBlock = idstr;
    const b = this.copy(encoded);
    return this.op((e) => e.xbzrlePage(idstr, offset, b));
  }
  ramDigest(idstr: string, count: number, digest: Uint8Array): this {
    this.lastBlock = idstr;
    const b = this.copy(digest);
    return this.op((e) => e.ramDigest(idstr, count, b));
  }
  ramEos(): this {
    return this.op((e) => e.ramEos());
  }
  blockChunk(device: string, sector: number, data: Uint8Array | undefined): this {
    const b = data && this.copy(data);
    return this.op((e) => e.blockChunk(device, sector, b));
  }
  blockVarChunk(device: string, sector: number, length: number, data: Uint8Array | undefined): this {
    const b = data && this.copy(data);
    return this.op((e) => e.blockVarChunk(device, sector, length, b));
  }
  blockProgress(percent: number): this {
    return this.op((e) => e.blockProgress(percent));
  }
  blockEos(): this {
    return this.op((e) => e.blockEos());
  }
  flush(): void {
    this.op((e) => e.flush());
  }

  /** Queues one page for compression on the pool; its record is written in call order. */
  compressPage(idstr: string, offset: number, page: Uint8Array): this {
    if (!this.spec) throw new TypeError('compressPage needs PooledEncoderOptions.spec');
    if (this.q.failure) return this;
    this.lastBlock = idstr;
    const b = this.q.batch(PAGES, () => ({ kind: 'pages', pages: this.buffer(this.batchPages * this.pageSize), count: 0, used: 0, sizes: [], units: 0 }));
    b.pages.set(page, b.used);
    b.used += this.pageSize;
    b.units++;
    this.q.push({ batch: b, index: b.count++, idstr, offset }, 1);
    if (b.count === this.batchPages) this.q.submit(PAGES);
    return this;
  }

  /** Queues one block chunk for compression on the pool (batches of about batchPages pages' bytes); written in call order. */
  compressChunk(device: string, sector: number, data: Uint8Array): this {
    if (!this.chunkSpec) throw new TypeError('compressChunk needs PooledEncoderOptions.chunkSpec');
    if (this.q.failure) return this;
    const capacity = this.batchPages * this.pageSize;
    const full = this.q.current(CHUNKS);
    if (full && full.used + data.length > full.pages.length) this.q.submit(CHUNKS);
    const b = this.q.batch(CHUNKS, () => ({ kind: 'chunks', pages: this.buffer(Math.max(capacity, data.length)), count: 0, used: 0, sizes: [], units: 0 }));
    const units = Math.ceil(data.length / this.pageSize);
    this.q.push({ batch: b, index: b.count++, device, sector, at: b.used, size: data.length }, units);
    b.pages.set(data, b.used);
    b.used += data.length;
    b.sizes.push(data.length);
    b.units += units;
    if (b.used >= capacity) this.q.submit(CHUNKS);
    return this;
  }

  // ---- async control

  /** Waits until at most `limit` pages are in flight and the sink has taken what was written. Throws the first failure. */
  async drain(limit = this.maxInFlight): Promise<void> {
    let error: unknown;
    try {
      await this.q.drain(limit);
    } catch (e) {
      error = e;
    }
    await this.settleSink();
    if (error !== undefined || this.q.failure) throw error ?? this.q.failure;
  }

  /** Compresses what is left, writes every record, flushes the encoder and waits for the sink. */
  async finish(): Promise<void> {
    this.q.submit();
    await this.drain(0);
    this.enc.flush();
    await this.settleSink();
    if (this.q.failure) throw this.q.failure;
  }

  private async settleSink(): Promise<void> {
    while (this.sinkWrites.length > 0) await this.sinkWrites.shift();
  }

  /** A batch buffer of at least `bytes`: a released one when it is large enough, else a new one. */
  private buffer(bytes: number): Uint8Array {
    const free = this.freeBuffers.pop();
    if (free && free.byteLength >= bytes) return new Uint8Array(free);
    return new Uint8Array(Math.max(bytes, this.batchPages * this.pageSize));
  }

  private release(buffer: ArrayBuffer): void {
    // enough for the batches in flight; a 1 MiB chunk's buffer is kept like any other
    if (this.freeBuffers.length < 16) this.freeBuffers.push(buffer);
  }

  private dispatch(b: CompressBatch): Promise<void> {
    const spec = b.kind === 'chunks' ? this.chunkSpec! : this.spec!;
    const pages = b.used === b.pages.length ? b.pages : b.pages.subarray(0, b.used);
    b.pages = pages;
    const sizes = b.kind === 'chunks' ? Uint32Array.from(b.sizes) : undefined;
    return this.pool.run({ op: 'compress', spec, pageSize: this.pageSize, pages, sizes }, [pages.buffer as ArrayBuffer]).then((r) => {
      const result = r as CompressResult;
      if (result.sizes.length !== b.count) throw new Error(`a worker returned ${result.sizes.length} items for ${b.count}`);
      b.result = result;
      b.pages = result.pages; // ours again: it went to the worker and back without a copy
      b.starts = offsets(result.sizes);
    });
  }

  /** Writes the head record if its page is compressed (a queued call always runs). */
  private deliver(op: Op): boolean {
    if ('call' in op) {
      op.call(this.enc);
      return true;
    }
    const b = op.batch;
    if (!b.result) return false;
    const start = b.starts![op.index]!;
    const payload = b.result.data.subarray(start, start + b.result.sizes[op.index]!);
    if ('device' in op) {
      this.enc.compressedChunk(this.chunkSpec!.codec, op.device, op.sector, b.pages.subarray(op.at, op.at + op.size), payload);
      this.q.settle(Math.ceil(op.size / this.pageSize));
    } else {
      const page = b.pages.subarray(op.index * this.pageSize, (op.index + 1) * this.pageSize);
      this.enc.compressedPage(this.spec!.codec, op.idstr, op.offset, page, payload);
      this.q.settle(1);
    }
    b.written = (b.written ?? 0) + 1;
    if (b.written === b.count) this.release(b.pages.buffer as ArrayBuffer);
    return true;
  }
}

function offsets(sizes: ArrayLike<number>): number[] {
  const starts: number[] = [];
  let at = 0;
  for (let i = 0; i < sizes.length; i++) {
    starts.push(at);
    at += sizes[i]!;
  }
  return starts;
}
