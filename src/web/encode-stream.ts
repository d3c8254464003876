import { asMigstreamError } from '../codec/errors.js';
import { STREAM_MAX_IN_FLIGHT, type PoolOptions } from '../stream/drive.js';
import { type DumpEncodeOptions, type DumpEncodeResult, type DumpSeries, type DumpWriter, encodeSteps } from '../stream/dump-encoder.js';
import { StreamEncoder } from '../stream/encoder.js';
import { encoderCompressors, resolveSpecs } from '../stream/page-codecs.js';
import { createPool } from '../stream/pool/pool-factory.js';
import type { PagePool } from '../stream/pool/pool.js';
import { PooledEncoder } from '../stream/pool/pooled-encoder.js';
import { DEFAULT_HIGH_WATER_MARK, type StreamControlOptions } from './connect.js';

export interface EncodeStreamOptions extends DumpEncodeOptions, PoolOptions, StreamControlOptions {}

/**
 * RAM dumps (and disks) in, a QEMU migration stream out: the stream form of
 * `encodeDumps`, with every option it takes plus `workers`, `signal` and
 * `highWaterMark`. The bytes are the same as encodeDumps' for any number of
 * workers. It encodes only when the reader pulls: a reader that stops stops
 * the encoder, with at most `highWaterMark` bytes queued (plus one step's
 * output, a few hundred records, and with workers the pages in flight).
 */
export class EncodeStream {
  readonly readable: ReadableStream<Uint8Array>;
  private result: DumpEncodeResult | undefined;
  private writer: DumpWriter | undefined;
  private readonly highWaterMark: number;
  private controller: ReadableStreamDefaultController<Uint8Array> | undefined;

  constructor(series: DumpSeries[], options: EncodeStreamOptions = {}) {
    const pageSize = options.pageSize ?? 4096;
    this.highWaterMark = options.highWaterMark ?? DEFAULT_HIGH_WATER_MARK;
    const signal = options.signal;
    const specs = resolveSpecs(options);
    const ownsPool = options.pool === undefined && (options.workers ?? 0) > 0;
    let pool: PagePool | undefined;
    let pooled: PooledEncoder | undefined;
    let steps: Generator<'pages' | 'settle', DumpEncodeResult, void> | undefined;
    let out: Uint8Array[] = [];
    let closed = false;
    const close = async (): Promise<void> => {
      if (closed) return;
      closed = true;
      signal?.removeEventListener('abort', onAbort);
      if (ownsPool) await pool?.close();
    };
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    const onAbort = (): void => {
      try {
        controller.error(signal!.reason);
      } catch {}
      void close();
    };
    this.readable = new ReadableStream<Uint8Array>(
      {
        start: (c) => {
          controller = c;
          this.controller = c;
          if (signal?.aborted) throw signal.reason;
          signal?.addEventListener('abort', onAbort, { once: true });
          pool = options.pool ?? (ownsPool ? createPool(options.workers!) : undefined);
          const sink = (chunk: Uint8Array): void => void out.push(chunk);
          let writer: DumpWriter;
          if (pool && (specs.spec || specs.chunkSpec)) {
            pooled = new PooledEncoder(sink, {
              ...specs,
              pool,
              pageSize,
              batchPages: options.batchPages,
              maxInFlight: options.maxInFlight ?? STREAM_MAX_IN_FLIGHT,
            });
            writer = pooled;
          } else {
            writer = new StreamEncoder(sink, { pageSize, ...encoderCompressors(specs) });
          }
          steps = encodeSteps(series, writer, options);
          this.writer = writer;
        },
        pull: async (c) => {
          try {
            // one encoder step at a time, until it wrote something (or ended)
            while (out.length === 0 && steps) {
              const r = steps.next();
              if (r.done) {
                if (pooled) await pooled.finish();
                else this.writer!.flush();
                this.result = r.value;
                steps = undefined;
              } else if (pooled) {
                await pooled.drain(r.value === 'settle' ? 0 : undefined);
              }
              if (signal?.aborted) return; // onAbort errored the stream
            }
          } catch (e) {
            void close();
            throw e instanceof RangeError || e instanceof TypeError ? e : asMigstreamError(e, this.writer?.bytesWritten ?? 0);
          }
          const ready = out;
          out = [];
          for (const chunk of ready) c.enqueue(chunk);
          if (!steps && out.length === 0) {
            await close();
            c.close();
          }
        },
        cancel: async () => {
          await close();
        },
      },
      new ByteLengthQueuingStrategy({ highWaterMark: this.highWaterMark }),
    );
  }

  /** Bytes encoded and waiting in the readable's queue for the reader (at most about highWaterMark plus one step's output). */
  get queuedBytes(): number {
    return this.highWaterMark - (this.controller?.desiredSize ?? this.highWaterMark);
  }

  /** Bytes the encoder wrote so far (queued, read, or still in its buffer). */
  get encodedBytes(): number {
    return this.writer?.bytesWritten ?? 0;
  }

  /** Per-iteration counters, once the whole stream was read; undefined before. */
  get summary(): DumpEncodeResult | undefined {
    return this.result;
  }
}
