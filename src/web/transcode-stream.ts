import { DecodeDriver, type PoolOptions } from '../stream/drive.js';
import { resolveSpecs } from '../stream/page-codecs.js';
import { PooledEncoder } from '../stream/pool/pooled-encoder.js';
import type { XbzrleIterationStats } from '../stream/ram-sender.js';
import { Transcoder, type TranscodeOptions } from '../stream/transcode.js';
import { DriverStream, type StreamControlOptions } from './connect.js';

export { bufferBound } from './connect.js';

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
 * A QEMU migration stream in, the same stream re-encoded out: a
 * ReadableWritablePair in the shape of CompressionStream, for
 * `readable.pipeThrough(new TranscodeStream({ compress: { codec: 'lz4' } }))`.
 * Takes every option of `transcode` (xbzrle, compress, blockChunk,
 * chunkCompress, digest, …) plus `workers`; the bytes are the same for any
 * number of workers and the same as transcodeBytes'. Backpressure runs end
 * to end: a reader that stops reading stops the decoder, and what the
 * stream holds stays under `bufferBound`.
 */
export class TranscodeStream extends DriverStream<Uint8Array> {
  private readonly run: { transcoder?: Transcoder; outBytes: number };

  constructor(options: TranscodeStreamOptions = {}) {
    const run: { transcoder?: Transcoder; outBytes: number } = { outBytes: 0 };
    const pageSize = options.pageSize ?? 4096;
    super(
      options,
      (chunk) => chunk.length,
      (queue, maxInFlight) => {
        const sink = (chunk: Uint8Array): void => {
          run.outBytes += chunk.length;
          for (let at = 0; at < chunk.length; at += READ_PIECE) queue.push(chunk.subarray(at, Math.min(at + READ_PIECE, chunk.length)));
        };
        return new DecodeDriver(
          { ...options, maxInFlight },
          (pool) => {
            const { spec, chunkSpec } = resolveSpecs(options);
            const writer =
              pool && (spec || chunkSpec)
                ? new PooledEncoder(sink, { spec, chunkSpec, pool, pageSize, batchPages: options.batchPages, maxInFlight })
                : undefined;
            run.transcoder = new Transcoder(writer ?? sink, options);
            return { handle: run.transcoder.handle, writer, pageTarget: run.transcoder.pageTarget };
          },
          queue,
        );
      },
    );
    this.run = run;
  }

  /** Counters, once the writable side closed successfully; undefined before. */
  get summary(): TranscodeSummary | undefined {
    if (!this.finished) return undefined;
    return { inBytes: this.inBytes, outBytes: this.run.outBytes, xbzrle: this.run.transcoder?.xbzrleStats ?? [] };
  }
}
