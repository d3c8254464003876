import { DecodeDriver, STREAM_MAX_IN_FLIGHT, type PoolOptions } from '../stream/drive.js';
import { resolveSpecs } from '../stream/page-codecs.js';
import { PooledEncoder } from '../stream/pool/pooled-encoder.js';
import type { XbzrleIterationStats } from '../stream/ram-sender.js';
import { Transcoder, type TranscodeOptions } from '../stream/transcode.js';
import { connect, DEFAULT_HIGH_WATER_MARK, type StreamControlOptions } from './connect.js';
import { OutputQueue } from './output-queue.js';

export interface TranscodeStreamOptions extends TranscodeOptions, PoolOptions, StreamControlOptions {}

/** What a finished TranscodeStream did. */
export interface TranscodeSummary {
  inBytes: number;
  outBytes: number;
  /** XBZRLE counters per RAM section (all zero without `xbzrle`). */
  xbzrle: XbzrleIterationStats[];
}

/** Output handed to the reader in pieces of at most this size. */
const READ_PIECE = 64 << 10;
/**
 * The most output one input record can add at once without workers: a
 * 1 MiB block chunk (QEMU's largest record), the encoder's 256 KiB buffer
 * flushing, one 64 KiB slice of device state.
 */
const UNIT_OUTPUT = (1 << 20) + (256 << 10) + (64 << 10);

/**
 * Bytes a stream may hold inside at most: `highWaterMark` + what one record
 * adds, and with workers the pages in flight both ways (`maxInFlight` each,
 * plus one 1 MiB chunk's worth), counted at page size plus record header.
 */
export function bufferBound(options: PoolOptions & StreamControlOptions & { pageSize?: number } = {}): number {
  const hwm = options.highWaterMark ?? DEFAULT_HIGH_WATER_MARK;
  const pooled = options.pool !== undefined || (options.workers ?? 0) > 0;
  const pageSize = options.pageSize ?? 4096;
  const inFlight = pooled ? 2 * ((options.maxInFlight ?? STREAM_MAX_IN_FLIGHT) + (1 << 20) / pageSize) * (pageSize + 64) : 0;
  return hwm + UNIT_OUTPUT + inFlight;
}

/**
 * A QEMU migration stream in, the same stream re-encoded out: a
 * ReadableWritablePair in the shape of CompressionStream, for
 * `readable.pipeThrough(new TranscodeStream({ compress: { codec: 'lz4' } }))`.
 * Takes every option of `transcode` (xbzrle, compress, blockChunk,
 * chunkCompress, digest, …) plus `workers`; the bytes are the same for any
 * number of workers and the same as transcodeBytes'. Backpressure runs end
 * to end: a reader that stops reading stops the decoder, and what the
 * stream holds stays under `bufferBound`.
 */
export class TranscodeStream {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  /** The documented bound on `bufferedBytes` for these options. */
  readonly bufferBound: number;
  private readonly queue: OutputQueue<Uint8Array>;
  private readonly driver: DecodeDriver;
  private readonly pageSize: number;
  private transcoder: Transcoder | undefined;
  private outBytes = 0;
  private done = false;

  constructor(options: TranscodeStreamOptions = {}) {
    this.bufferBound = bufferBound(options);
    this.pageSize = options.pageSize ?? 4096;
    this.queue = new OutputQueue<Uint8Array>(options.highWaterMark ?? DEFAULT_HIGH_WATER_MARK, (c) => c.length);
    const sink = (chunk: Uint8Array): void => {
      this.outBytes += chunk.length;
      for (let at = 0; at < chunk.length; at += READ_PIECE) this.queue.push(chunk.subarray(at, Math.min(at + READ_PIECE, chunk.length)));
    };
    const maxInFlight = options.maxInFlight ?? STREAM_MAX_IN_FLIGHT;
    const pair = connect(
      () =>
        new DecodeDriver({ ...options, maxInFlight }, (pool) => {
          const { spec, chunkSpec } = resolveSpecs(options);
          const writer =
            pool && (spec || chunkSpec)
              ? new PooledEncoder(sink, { spec, chunkSpec, pool, pageSize: this.pageSize, batchPages: options.batchPages, maxInFlight })
              : undefined;
          this.transcoder = new Transcoder(writer ?? sink, options);
          return { handle: this.transcoder.handle, writer };
        }, this.queue),
      this.queue,
      options.signal,
      () => {
        this.done = true;
      },
    );
    this.readable = pair.readable;
    this.writable = pair.writable;
    this.driver = pair.driver;
  }

  /** Output queued for the reader plus pages on the workers, in bytes. */
  get bufferedBytes(): number {
    return this.queue.bytes + this.driver.pagesInFlight * this.pageSize;
  }

  /** The most output that was ever queued for the reader. */
  get peakQueuedBytes(): number {
    return this.queue.peak;
  }

  /** Counters, once the writable side closed successfully; undefined before. */
  get summary(): TranscodeSummary | undefined {
    if (!this.done) return undefined;
    return { inBytes: this.driver.inBytes, outBytes: this.outBytes, xbzrle: this.transcoder?.xbzrleStats ?? [] };
  }
}
