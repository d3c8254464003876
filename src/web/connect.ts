import { asMigstreamError, MigstreamError } from '../codec/errors.js';
import type { DecodeDriver } from '../stream/drive.js';
import type { OutputQueue } from './output-queue.js';

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
export function connect<T>(driver: () => DecodeDriver, queue: OutputQueue<T>, signal: AbortSignal | undefined, onEnd: () => void): Connected<T> & { driver: DecodeDriver } {
  let readableController!: ReadableStreamDefaultController<T>;
  let writableController!: WritableStreamDefaultController;
  let failure: { reason: unknown } | undefined;
  const d = driver();
  const onAbort = () => fail(signal!.reason);
  const fail = (e: unknown, passThrough = false): unknown => {
    if (failure) return failure.reason;
    const reason = passThrough || isAbortError(e) ? e : asMigstreamError(e, d.decoder.offset);
    failure = { reason };
    signal?.removeEventListener('abort', onAbort);
    queue.fail(reason);
    try {
      readableController.error(reason);
    } catch {}
    try {
      writableController.error(reason);
    } catch {}
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
      c.signal?.addEventListener('abort', () => fail(c.signal.reason, true), { once: true });
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
      fail(reason, true);
    },
  });
  if (signal?.aborted) fail(signal.reason);
  else signal?.addEventListener('abort', onAbort, { once: true });
  return { readable, writable, driver: d };
}
