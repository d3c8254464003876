import { closeSync, createReadStream, openSync, readSync } from 'node:fs';
import { MigstreamError } from '../codec/errors.js';
import type { DecoderOptions } from '../stream/decoder-options.js';
import { StreamDecoder } from '../stream/decoder.js';
import type { EventHandler } from '../stream/events.js';
import { ChannelReader } from './channel-reader.js';
import { isMultifdHead } from './format.js';
import { type ChannelSource, MultifdMerger, type MultifdStats } from './merge.js';

/** Extra channel files given for a main-channel STREAM (`--channel FILE …`), by the STREAM's path. */
const attached = new Map<string, string[]>();

/** Makes `decodeFile(path)` read `channels` as the multifd channels of the main channel `path`. */
export function attachChannels(path: string, channels: string[]): void {
  attached.set(path, channels);
}

export function attachedChannels(path: string): string[] | undefined {
  return attached.get(path);
}

/** Whether a file starts with a multifd handshake. */
export function isMultifdFile(path: string): boolean {
  try {
    const fd = openSync(path, 'r');
    try {
      const head = new Uint8Array(8);
      return isMultifdHead(head.subarray(0, readSync(fd, head, 0, 8, 0)));
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
}

/** A channel read from a file on demand (synchronously: the merger pulls a channel when the main channel reaches an EOS). */
export class FileChannelSource implements ChannelSource {
  readonly reader: ChannelReader;
  private fd: number | undefined;
  private pos = 0;
  private readonly chunk = new Uint8Array(1 << 20);

  constructor(
    readonly path: string,
    label: string,
    pageSize = 4096,
  ) {
    this.reader = new ChannelReader(pageSize, label);
    this.fd = openSync(path, 'r');
  }

  pull(): boolean {
    if (this.fd === undefined) return false;
    const n = readSync(this.fd, this.chunk, 0, this.chunk.length, this.pos);
    if (n === 0) {
      this.close();
      return false;
    }
    this.pos += n;
    this.reader.push(this.chunk.slice(0, n));
    return true;
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/**
 * Decodes a multifd migration: the main channel's file and its channels'
 * files (any order: the ids come from the handshakes) as one event sequence.
 * Returns the main channel's byte count and the per-channel, per-epoch stats.
 */
export async function decodeMultifd(
  mainPath: string,
  channels: { path: string; label: string }[],
  handler: EventHandler,
  options: DecoderOptions = {},
): Promise<{ bytes: number; stats: MultifdStats }> {
  const sources = channels.map((c) => ({ source: new FileChannelSource(c.path, c.label), label: c.label }));
  try {
    const merger = new MultifdMerger(sources, handler);
    const decoder = new StreamDecoder(merger.handle, options);
    let bytes = 0;
    for await (const chunk of createReadStream(mainPath, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      decoder.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length));
    }
    decoder.end();
    return { bytes, stats: merger.stats };
  } catch (e) {
    if (e instanceof MigstreamError && e.code === 'INTERNAL' && e.cause instanceof MigstreamError) throw e.cause;
    throw e;
  } finally {
    for (const s of sources) s.source.close();
  }
}

/** The multifd channels of a STREAM argument: `--channel` files, or a recording's connections that open with a handshake. */
export function multifdChannelsOf(path: string, recording?: { n: number; s2d: string; kind: string }[]): { path: string; label: string }[] {
  const files = attached.get(path);
  if (files) return files.map((f, i) => ({ path: f, label: `--channel ${i + 1} (${f})` }));
  return (recording ?? []).filter((c) => c.kind !== 'main' && isMultifdFile(c.s2d)).map((c) => ({ path: c.s2d, label: `conn-${c.n}` }));
}
