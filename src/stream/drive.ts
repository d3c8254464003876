import { asMigstreamError } from '../codec/errors.js';
import { StreamDecoder, type DecoderOptions, type PageTarget } from './decoder.js';
import type { EventHandler } from './events.js';
import { DecompressQueue } from './pool/decompress-queue.js';
import type { PooledEncoder } from './pool/pooled-encoder.js';
import { createPool } from './pool/pool-factory.js';
import type { PagePool } from './pool/pool.js';

/** How a stream uses worker threads for compressed pages and chunks. */
export interface PoolOptions {
  /**
   * Worker threads that decompress (and, with `compress`/`chunkCompress`,
   * compress) pages and chunks; the output is the same bytes as without.
   * 0 or absent: everything runs on the calling thread. Needs a pool
   * factory, which migstream/node plugs in (or pass `pool`).
   */
  workers?: number;
  /** A pool to use (and not close) instead of making one. */
  pool?: PagePool;
  /** Pages per batch sent to a worker. Default 64. */
  batchPages?: number;
  /** Most pages in flight on the pool per direction (decompress, compress) before the decoder waits. Default 256. */
  maxInFlight?: number;
}

/** Where decoded output goes, and whether it can take more now. */
export interface DriveOutput {
  /** True when the consumer is behind: the decoder stops before its next record. */
  full(): boolean;
  /** Resolves once full() is false (rejects if the output failed). */
  room(): Promise<void>;
}

/** What the driver needs from the code behind the decoder: its handler, and the pooled writer if it compresses on the pool. */
export interface DriveTarget {
  handle: EventHandler;
  writer?: PooledEncoder;
  /** Where the decoder may decode whole LZ4 pages (a Transcoder's pageTarget); used without a pool. */
  pageTarget?: PageTarget;
}

/** Input is handed to the decoder in pieces of at most this many bytes. */
const SLICE_BYTES = 64 << 10;
/** maxInFlight default on the stream surface: 1 MiB of 4 KiB pages per direction. */
export const STREAM_MAX_IN_FLIGHT = 256;

/**
 * Drives a StreamDecoder from asynchronous input with backpressure end to
 * end: after each slice it waits for the pool queues to drain below
 * `maxInFlight` and for the output to have room, and the decoder itself
 * stops before the next record while the output is full or too many pages
 * are in flight, so one large input chunk cannot flood a slow consumer.
 */
export class DecodeDriver {
  readonly decoder: StreamDecoder;
  private readonly pool: PagePool | undefined;
  private readonly ownsPool: boolean;
  private readonly queue: DecompressQueue | undefined;
  private readonly writer: PooledEncoder | undefined;
  private readonly maxInFlight: number;
  private closed = false;
  inBytes = 0;

  /**
   * @param target builds the handler behind the decoder once the pool (if
   *   any) exists, e.g. a Transcoder writing through a PooledEncoder.
   */
  constructor(
    options: DecoderOptions & PoolOptions & { order?: 'stream' | 'landing'; impl?: 'node' | 'portable' },
    target: (pool: PagePool | undefined) => DriveTarget,
    private readonly output: DriveOutput,
  ) {
    this.maxInFlight = options.maxInFlight ?? STREAM_MAX_IN_FLIGHT;
    this.ownsPool = options.pool === undefined && (options.workers ?? 0) > 0;
    this.pool = options.pool ?? (this.ownsPool ? createPool(options.workers!) : undefined);
    try {
      const t = target(this.pool);
      this.writer = t.writer;
      if (this.pool) {
        this.queue = new DecompressQueue(t.handle, {
          pool: this.pool,
          impl: options.impl,
          order: options.order ?? 'stream',
          batchPages: options.batchPages,
          maxInFlight: this.maxInFlight,
        });
        this.decoder = new StreamDecoder(this.queue.handle, { ...options, decompress: 'defer' });
      } else {
        this.decoder = new StreamDecoder(t.handle, t.pageTarget ? { ...options, pageTarget: t.pageTarget } : options);
      }
    } catch (e) {
      void this.close();
      throw e;
    }
    this.decoder.pauseWhile(
      () =>
        this.output.full() ||
        (this.queue !== undefined && this.queue.pagesInFlight > this.maxInFlight) ||
        (this.writer !== undefined && this.writer.pagesInFlight > this.maxInFlight),
    );
  }

  /** Pages on the pool (both directions): what the workers hold besides the output queue. */
  get pagesInFlight(): number {
    return (this.queue?.pagesInFlight ?? 0) + (this.writer?.pagesInFlight ?? 0);
  }

  /** Feeds one input chunk; resolves when it is decoded and the consumer has room for more. */
  async write(chunk: Uint8Array): Promise<void> {
    try {
      this.inBytes += chunk.length;
      for (let at = 0; at < chunk.length; at += SLICE_BYTES) {
        this.decoder.push(chunk.subarray(at, Math.min(at + SLICE_BYTES, chunk.length)));
        await this.settle();
      }
    } catch (e) {
      throw asMigstreamError(e, this.decoder.offset);
    }
  }

  /** Declares the end of input: decodes the rest and lets the pool queues finish. */
  async end(): Promise<void> {
    try {
      await this.settle();
      this.decoder.end();
      if (this.queue) await this.queue.finish();
      if (this.writer) await this.writer.finish();
    } catch (e) {
      throw asMigstreamError(e, this.decoder.offset);
    }
  }

  private async settle(): Promise<void> {
    for (;;) {
      if (this.queue) await this.queue.drain(this.maxInFlight);
      if (this.writer) await this.writer.drain(this.maxInFlight);
      if (this.output.full()) await this.output.room();
      if (!this.decoder.paused) return;
      this.decoder.resume();
    }
  }

  /** Stops the pool if this driver made it (terminating its workers); pending work rejects. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ownsPool) await this.pool!.close();
  }
}
