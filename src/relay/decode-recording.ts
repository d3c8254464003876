import { createReadStream } from 'node:fs';
import { StreamDecoder, type DecoderOptions } from '../stream/decoder.js';
import type { EventHandler, StreamEvent } from '../stream/events.js';
import { PreemptDecoder } from '../stream/preempt.js';
import { decodeMultifd, multifdChannelsOf } from '../multifd/files.js';
import { mainConnection, readRecording } from './recording.js';

/**
 * Decodes a recording directory as one migration, in the order the
 * destination applies it: the main channel's events, then the pages of the
 * postcopy-preempt channels (docs/socket-migration.md: after the switch a page
 * goes out once, on one channel), then the main channel's end. Returns the
 * main channel's byte count.
 */
export async function decodeRecording(dir: string, handler: EventHandler, options: DecoderOptions = {}): Promise<number> {
  const conns = readRecording(dir);
  const main = mainConnection(conns, dir);
  const multifd = multifdChannelsOf(dir, conns);
  if (multifd.length > 0) return (await decodeMultifd(main.s2d, multifd, handler, options)).bytes;
  let end: StreamEvent | undefined;
  let blocks: Extract<StreamEvent, { type: 'ram-blocks' }>['blocks'] = [];
  let pageSize = options.pageSize ?? 4096;
  const decoder = new StreamDecoder((ev) => {
    if (ev.type === 'end') {
      end = ev;
      return;
    }
    if (ev.type === 'ram-blocks') blocks = ev.blocks;
    if (ev.type === 'page') pageSize = ev.pageSize;
    handler(ev);
  }, options);
  const bytes = await feed(main.s2d, (c) => decoder.push(c));
  decoder.end();
  for (const c of conns) {
    if (c.kind !== 'preempt') continue;
    const pre = new PreemptDecoder(blocks, pageSize, handler);
    await feed(c.s2d, (chunk) => pre.push(chunk));
    pre.end();
  }
  if (end) handler(end);
  return bytes;
}

async function feed(path: string, push: (c: Uint8Array) => void): Promise<number> {
  let bytes = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length));
  }
  return bytes;
}
