import { cloneEvent } from '../stream/clone-event.js';
import type { DecoderOptions } from '../stream/decoder.js';
import { DecodeDriver, type PoolOptions } from '../stream/drive.js';
import type { StreamEvent } from '../stream/events.js';
import { DriverStream, type StreamControlOptions } from './connect.js';
import { unreachable } from '../stream/clone-event.js';

export interface DecodeStreamOptions extends DecoderOptions, PoolOptions, StreamControlOptions {
  /** With workers: "stream" (default) keeps stream order; "landing" lets inflated pages apply as they land, within their iteration (src/stream/pool/decompress-queue.ts). */
  order?: 'stream' | 'landing';
}

/** What a queued event counts against the high-water mark: its bytes plus a small fixed cost. */
function eventSize(ev: StreamEvent): number {
  switch (ev.type) {
    case 'page':
    case 'block-chunk':
      return ev.data.length + 64;
    case 'device-state':
      return ev.bytes.length + 64;
    case 'command':
    case 'manifest':
      return ev.payload.length + 64;
    case 'dirty-bitmap':
      return ev.record.raw.length + 64;
    case 'configuration':
      return ev.configuration.raw.length + 64;
    case 'header':
    case 'section':
    case 'section-footer':
    case 'ram-blocks':
    case 'ram-digest':
    case 'ram-flush':
    case 'iteration-end':
    case 'block-progress':
    case 'block-eos':
    case 'warning':
    case 'end':
      return 64;
    default:
      return unreachable(ev);
  }
}

/**
 * Migration stream bytes in, StreamEvents out: `bytes.pipeThrough(new DecodeStream())`.
 * Every event handed out owns its bytes (see cloneEvent), so it stays valid
 * after the reader's `await`. With `workers`, compressed pages and chunks
 * are inflated on worker threads; events still come in stream order.
 */
export class DecodeStream extends DriverStream<StreamEvent> {
  constructor(options: DecodeStreamOptions = {}) {
    super(
      options,
      eventSize,
      (queue, maxInFlight) => new DecodeDriver({ ...options, maxInFlight }, () => ({ handle: (ev) => queue.push(cloneEvent(ev)) }), queue),
    );
  }
}

/** A byte source for decodeEvents: a WHATWG ReadableStream or any (async) iterable of chunks. */
export type ByteChunks = ReadableStream<Uint8Array> | AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

/**
 * The events of a migration stream as an async iterator:
 * `for await (const ev of decodeEvents(socketReadable)) …`. Input is read
 * only as fast as the loop takes events. Breaking out of the loop cancels
 * the source; a bad stream throws a MigstreamError from the loop.
 */
export async function* decodeEvents(source: ByteChunks, options: DecodeStreamOptions = {}): AsyncGenerator<StreamEvent, void, undefined> {
  const ds = new DecodeStream(options);
  const pumping = feed(source, ds.writable);
  pumping.catch(() => {}); // its failure reaches the reader through the stream
  const reader = ds.readable.getReader();
  let finished = false;
  try {
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      yield r.value;
    }
    finished = true;
    await pumping;
  } finally {
    if (!finished) await reader.cancel().catch(() => {});
    await pumping.catch(() => {});
  }
}

async function feed(source: ByteChunks, writable: WritableStream<Uint8Array>): Promise<void> {
  if (source instanceof ReadableStream) {
    await source.pipeTo(writable);
    return;
  }
  const w = writable.getWriter();
  try {
    for await (const chunk of source as AsyncIterable<Uint8Array>) {
      await w.ready;
      await w.write(chunk);
    }
    await w.close();
  } catch (e) {
    await w.abort(e).catch(() => {});
    throw e;
  }
}
