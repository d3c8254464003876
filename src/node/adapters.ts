import { createReadStream } from 'node:fs';
import { Duplex } from 'node:stream';
import type { ReadableWritablePair } from 'node:stream/web';
import { DecodeStream, type DecodeStreamOptions } from '../web/decode-stream.js';
import { TranscodeStream, type TranscodeStreamOptions } from '../web/transcode-stream.js';

/** A web stream pair as a Node Duplex (Duplex.fromWeb), with the same backpressure. */
function toDuplex(pair: { readable: ReadableStream<unknown>; writable: WritableStream<Uint8Array> }, objectMode: boolean): Duplex {
  return Duplex.fromWeb(pair as unknown as ReadableWritablePair, { objectMode });
}

/**
 * TranscodeStream as a Node Duplex, for `pipeline(socket, transcodeTransform(opts), peer)`.
 * Bytes in, bytes out; errors are the stream's MigstreamError.
 */
export function transcodeTransform(options: TranscodeStreamOptions = {}): Duplex {
  return toDuplex(new TranscodeStream(options), false);
}

/** DecodeStream as a Node Duplex in object mode: bytes in, StreamEvents out. */
export function decodeTransform(options: DecodeStreamOptions = {}): Duplex {
  return toDuplex(new DecodeStream(options), true);
}

/** A file ("-": stdin) as plain Uint8Array chunks for decodeEvents or a stream's writable. */
export async function* readFileChunks(path: string, chunkBytes = 1 << 20): AsyncGenerator<Uint8Array> {
  const input = path === '-' ? process.stdin : createReadStream(path, { highWaterMark: chunkBytes });
  for await (const c of input as AsyncIterable<Buffer>) yield new Uint8Array(c.buffer, c.byteOffset, c.length);
}
