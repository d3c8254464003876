import { asMigstreamError, MigstreamError } from '../codec/errors.js';
import { STREAM_MAX_IN_FLIGHT, type DecodeDriver, type PoolOptions } from '../stream/drive.js';
import { OutputQueue } from './output-queue.js';

/** Options every stream of the surface takes besides its codec options. */
export interface StreamControlOptions {
  /**
   * Output (bytes, or event payload bytes) queued for the reader before the
   * stream stops decoding. Default 1 MiB. What the stream holds inside stays
   * under its `bufferBound` (docs/embedding.md).
   */
  highWaterMark?: number;
  /** Cancels the stream: both sides fail with the signal's reason (an AbortError) and worker threads are terminated. */
  signal?: AbortSignal;
}

export const DEFAULT_HIGH_WATER_MARK = 1 << 20;

/** The readable and writable sides around a driver, sharing one failure. */
export interface Connected<T> {
  readable: ReadableStream<T>;
  writable: WritableStream<Uint8Array>;
}

function isAbortError(e: unknown): boolean {
  return (e as { name?: unknown } | null)?.name === 'AbortError';
}

/**
 * Wires a driver to WHATWG streams: the writable feeds it (its promise is the
 * backpressure), the readable hands out the queue one item per read. The
 * first failure (a bad stream, a bug, a cancelled reader, an abort) errors
 * both sides and closes the driver's pool. Bad input and bugs arrive as
 * MigstreamError; an abort with the signal's reason; a writable aborted by
 * its source (pipeTo) with the source's error.
 */
export function connect<T>(
  driver: () => DecodeDriver,
  queue: OutputQueue<T>,
  signal: AbortSignal | undefined,
  onEnd: () => void,
): Connected<T> & { driver: DecodeDriver } {
  let readableController!: ReadableStreamDefaultController<T>;
  let writableController!: WritableStreamDefaultController;
  let failure: { reason: unknown } | undefined;
  const d = driver();
  const onAbort = () => fail(signal!.reason);
  /** `aborting`: the writable is being aborted already (erroring it again trips an assertion inside Node's streams). */
  const fail = (e: unknown, passThrough = false, aborting = false): unknown => {
    if (failure) return failure.reason;
    const reason = passThrough || isAbortError(e) ? e : asMigstreamError(e, d.decoder.offset);
    failure = { reason };
    signal?.removeEventListener('abort', onAbort);
    queue.fail(reason);
    try {
      readableController.error(reason);
    } catch {}
    if (!aborting) {
      try {
        writableController.error(reason);
      } catch {}
    }
    void d.close();
    return reason;
  };
  const readable = new ReadableStream<T>(
    {
      start(c) {
        readableController = c;
      },
      async pull(c) {
        let item: T | undefined;
        try {
          item = await queue.take();
        } catch {
          return; // fail() errored the stream already
        }
        if (item === undefined) c.close();
        else c.enqueue(item);
      },
      cancel(reason) {
        fail(new MigstreamError('OUTPUT_CLOSED', d.decoder.offset, `the reader cancelled the output${reason === undefined ? '' : `: ${String(reason)}`}`));
      },
    },
    { highWaterMark: 0 },
  );
  const writable = new WritableStream<Uint8Array>({
    start(c) {
      writableController = c;
      // writer.abort() waits for the write in flight: end that write now instead of when the reader catches up
      c.signal?.addEventListener('abort', () => fail(c.signal.reason, true, true), { once: true });
    },
    async write(chunk) {
      if (failure) throw failure.reason;
      if (!(chunk instanceof Uint8Array)) throw fail(new TypeError(`expected Uint8Array chunks, got ${Object.prototype.toString.call(chunk)}`));
      try {
        await d.write(chunk);
      } catch (e) {
        throw fail(e);
      }
    },
    async close() {
      if (failure) throw failure.reason;
      try {
        await d.end();
        onEnd();
        queue.end();
        signal?.removeEventListener('abort', onAbort);
      } catch (e) {
        throw fail(e);
      } finally {
        await d.close();
      }
    },
    abort(reason) {
      fail(reason, true, true);
    },
  });
  if (signal?.aborted) fail(signal.reason);
  else signal?.addEventListener('abort', onAbort, { once: true });
  return { readable, writable, driver: d };
}

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

/** What TranscodeStream and DecodeStream share: the two sides around a driver, its output queue, and what it holds. */
export abstract class DriverStream<T> {
  readonly readable: ReadableStream<T>;
  readonly writable: WritableStream<Uint8Array>;
  /** The documented bound on `bufferedBytes` for these options (docs/embedding.md). */
  readonly bufferBound: number;
  private readonly queue: OutputQueue<T>;
  private readonly driver: DecodeDriver;
  private readonly pageSize: number;
  private ended = false;

  /** @param makeDriver builds the driver that feeds `queue` (called once, in the constructor). */
  constructor(
    options: PoolOptions & StreamControlOptions & { pageSize?: number },
    sizeOf: (item: T) => number,
    makeDriver: (queue: OutputQueue<T>, maxInFlight: number) => DecodeDriver,
  ) {
    this.bufferBound = bufferBound(options);
    this.pageSize = options.pageSize ?? 4096;
    const queue = new OutputQueue<T>(options.highWaterMark ?? DEFAULT_HIGH_WATER_MARK, sizeOf);
    this.queue = queue;
    const pair = connect(
      () => makeDriver(queue, options.maxInFlight ?? STREAM_MAX_IN_FLIGHT),
      queue,
      options.signal,
      () => {
        this.ended = true;
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

  /** Input bytes taken so far. */
  get inBytes(): number {
    return this.driver.inBytes;
  }

  /** Whether the writable side closed and everything was decoded. */
  get finished(): boolean {
    return this.ended;
  }
}
