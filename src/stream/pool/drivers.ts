import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { OutputClosedError } from '../../codec/errors.js';
import { StreamDecoder, type DecoderOptions } from '../decoder.js';
import { encodeSteps, type DumpEncodeOptions, type DumpEncodeResult, type DumpSeries } from '../dump-encoder.js';
import type { EventHandler } from '../events.js';
import { VerifyingRamStore } from '../digest.js';
import type { RamStore } from '../ram-image.js';
import { resolveSpecs } from '../page-codecs.js';
import type { XbzrleIterationStats } from '../ram-sender.js';
import { Transcoder, type TranscodeOptions, concatChunks } from '../transcode.js';
import { DecompressQueue } from './decompress-queue.js';
import { PooledEncoder } from './pooled-encoder.js';
import { ThreadPool, type PagePool } from './thread-pool.js';
import { isThenable } from './thenable.js';

/** How the pooled paths use their workers. */
export interface PoolOptions {
  /** Worker threads. Default 2. Ignored when `pool` is given. */
  workers?: number;
  /** A pool to use (and not close) instead of making one. */
  pool?: PagePool;
  /** Pages per batch. Default 64. */
  batchPages?: number;
  /** Most pages in flight (compressing, decompressing or waiting to be written). Default 1024. */
  maxInFlight?: number;
  /** Input is fed to the decoder in pieces of at most this many bytes, with a drain between. Default 64 KiB. */
  sliceBytes?: number;
}

/** An async byte source: a file path ("-" for stdin), bytes, or any async iterable of chunks. */
export type ByteSource = string | Uint8Array | AsyncIterable<Uint8Array>;

async function* chunksOf(source: ByteSource): AsyncIterable<Uint8Array> {
  if (source instanceof Uint8Array) {
    yield source;
    return;
  }
  if (typeof source === 'string') {
    const input = source === '-' ? process.stdin : createReadStream(source, { highWaterMark: 1 << 20 });
    for await (const c of input as AsyncIterable<Buffer>) yield new Uint8Array(c.buffer, c.byteOffset, c.length);
    return;
  }
  yield* source;
}

async function withPool<T>(options: PoolOptions, body: (pool: PagePool) => Promise<T>): Promise<T> {
  const pool = options.pool ?? new ThreadPool(options.workers ?? 2);
  try {
    return await body(pool);
  } finally {
    if (!options.pool) await pool.close();
  }
}

/** Feeds `source` to `decoder` in slices, awaiting `between` after each: the backpressure point. */
async function feed(source: ByteSource, decoder: StreamDecoder, sliceBytes: number, between: () => Promise<void>): Promise<number> {
  let bytes = 0;
  for await (const chunk of chunksOf(source)) {
    bytes += chunk.length;
    for (let at = 0; at < chunk.length; at += sliceBytes) {
      decoder.push(chunk.subarray(at, Math.min(at + sliceBytes, chunk.length)));
      await between();
    }
  }
  decoder.end();
  return bytes;
}

/**
 * Decodes a stream with compressed pages decompressed on a worker pool.
 * Events reach `handler` in stream order, or in "landing" order (inflated
 * pages may apply late within their iteration, never across the barrier;
 * a stream with iteration digests is always in stream order).
 * With `ram`, RAM is applied to that store before `handler` sees each event,
 * and the stream's iteration digests, if it declares them, are checked.
 * Resolves with the bytes read; rejects with the decoder's MigstreamError or
 * the pool's PoolError, after shutting the pool down.
 */
export async function decodePooled(
  source: ByteSource,
  handler: EventHandler,
  options: DecoderOptions & PoolOptions & { order?: 'stream' | 'landing'; impl?: 'node' | 'portable'; ram?: RamStore } = {},
): Promise<number> {
  return withPool(options, async (pool) => {
    const ram = options.ram ? new VerifyingRamStore(options.ram) : undefined;
    const downstream: EventHandler = ram
      ? (ev) => {
          ram.handle(ev);
          handler(ev);
        }
      : handler;
    const queue = new DecompressQueue(downstream, {
      pool,
      impl: options.impl,
      order: options.order,
      batchPages: options.batchPages,
      maxInFlight: options.maxInFlight,
    });
    const decoder = new StreamDecoder(queue.handle, { ...options, decompress: 'defer' });
    const bytes = await feed(source, decoder, options.sliceBytes ?? 65536, () => queue.drain());
    await queue.finish();
    return bytes;
  });
}

export interface PooledTranscodeResult {
  inBytes: number;
  outBytes: number;
  xbzrle: XbzrleIterationStats[];
}

/**
 * transcode with workers: pages decompress on the pool (in stream order) and,
 * with `compress`, compress on it, records written in order by one
 * encoder, so the output is byte-identical to the synchronous Transcoder's
 * for any number of workers. `sink` may return a promise (a slow sink):
 * input stops being read until it resolves.
 */
export async function transcodePooled(
  source: ByteSource,
  sink: (chunk: Uint8Array) => void | Promise<void>,
  options: TranscodeOptions & PoolOptions = {},
): Promise<PooledTranscodeResult> {
  return withPool(options, async (pool) => {
    const { spec, chunkSpec } = resolveSpecs(options);
    const pageSize = options.pageSize ?? 4096;
    let outBytes = 0;
    const count = (chunk: Uint8Array) => {
      outBytes += chunk.length;
      return sink(chunk);
    };
    const writer =
      spec || chunkSpec
        ? new PooledEncoder(count, { spec, chunkSpec, pool, pageSize, batchPages: options.batchPages, maxInFlight: options.maxInFlight })
        : undefined;
    const pending: Promise<void>[] = [];
    const t = new Transcoder(
      writer ??
        ((chunk: Uint8Array) => {
          const p = count(chunk);
          if (isThenable(p)) pending.push(Promise.resolve(p).then(() => undefined));
        }),
      options,
    );
    const queue = new DecompressQueue(t.handle, { pool, order: 'stream', batchPages: options.batchPages, maxInFlight: options.maxInFlight });
    const decoder = new StreamDecoder(queue.handle, { ...options, decompress: 'defer' });
    const inBytes = await feed(source, decoder, options.sliceBytes ?? 65536, async () => {
      await queue.drain();
      if (writer) await writer.drain();
      while (pending.length > 0) await pending.shift();
    });
    await queue.finish();
    if (writer) await writer.finish();
    while (pending.length > 0) await pending.shift();
    return { inBytes, outBytes, xbzrle: t.xbzrleStats };
  });
}

/**
 * encodeDumps with compression on a worker pool: pages (`compress`) and
 * variable-size disk chunks (`chunkCompress`) go to the workers in batches,
 * XBZRLE, zero and plain records keep their place, so the bytes equal
 * encodeDumps' with the same options for any number of workers. Awaits
 * room in the pool (and a slow sink) as it goes.
 */
export async function encodeDumpsPooled(
  series: DumpSeries[],
  sink: (chunk: Uint8Array) => void | Promise<void>,
  options: DumpEncodeOptions & PoolOptions = {},
): Promise<DumpEncodeResult> {
  return withPool(options, async (pool) => {
    const writer = new PooledEncoder(sink, {
      ...resolveSpecs(options),
      pool,
      pageSize: options.pageSize ?? 4096,
      batchPages: options.batchPages,
      maxInFlight: options.maxInFlight,
    });
    const steps = encodeSteps(series, writer, options);
    for (;;) {
      const r = steps.next();
      if (r.done) {
        await writer.finish();
        return r.value;
      }
      await writer.drain(r.value === 'settle' ? 0 : undefined);
    }
  });
}

/** transcodePooled into memory. */
export async function transcodeBytesPooled(input: Uint8Array, options: TranscodeOptions & PoolOptions = {}): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  await transcodePooled(input, (c) => void parts.push(c.slice()), options);
  return concatChunks(parts);
}

/** An async file sink ("-": stdout) that resolves writes only when the stream has room: backpressure for the pooled paths. */
export function fileSink(path: string): { write(chunk: Uint8Array): void | Promise<void>; close(): Promise<void> } {
  const out: WriteStream | NodeJS.WriteStream = path === '-' ? process.stdout : createWriteStream(path);
  let failed: Error | undefined;
  out.on('error', (e: NodeJS.ErrnoException) => {
    failed = e.code === 'EPIPE' ? new OutputClosedError(path === '-' ? 'stdout' : path, 'EPIPE') : e;
  });
  return {
    write(chunk) {
      if (failed) throw failed;
      if (out.write(chunk)) return;
      return new Promise<void>((resolve, reject) => {
        const done = () => {
          out.off('drain', done);
          out.off('error', done);
          failed ? reject(failed) : resolve();
        };
        out.on('drain', done);
        out.on('error', done);
      });
    },
    close() {
      if (path === '-') return Promise.resolve();
      return new Promise<void>((resolve, reject) => (out as WriteStream).end((e?: Error | null) => (e || failed ? reject(e ?? failed) : resolve())));
    },
  };
}
