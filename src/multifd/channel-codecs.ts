import { Unzlib } from 'fflate';
import { Decompress as ZstdDecompress } from 'fzstd';
import type { MultifdCompression } from './format.js';
import { ZstdRawDeflater } from './zstd-raw.js';
import { concatBytes } from '../codec/concat.js';
import { DedupDeflater, DedupInflater } from './page-dedup.js';

/**
 * Per-channel compression state. QEMU 7.2 keeps one zlib stream (deflateInit,
 * Z_SYNC_FLUSH after each packet) or one never-ended zstd frame (ZSTD_e_flush
 * after each packet) per channel for the whole migration, so a channel's
 * packets are inflated in order, by one inflater, never in parallel.
 */
export interface ChannelInflater {
  /** The packet's payload → exactly its pages' bytes (throws a plain Error otherwise). */
  inflate(payload: Uint8Array, expected: number): Uint8Array;
  /** inflate() returns a new buffer every call, the caller's to keep (a relay hands it to a socket without a copy). */
  readonly fresh?: boolean;
}

export interface ChannelDeflater {
  /** Pages of one packet → its payload, flushed so the receiver can inflate it alone. */
  deflate(pages: Uint8Array): Uint8Array;
}

function collect(parts: Uint8Array[], expected: number): Uint8Array {
  const total = parts.reduce((n, p) => n + p.length, 0);
  if (total !== expected) throw new Error(`packet size received ${total} size expected ${expected}`);
  return concatBytes(parts);
}

/** Collects an inflater's output, refusing more than the packet's pages (a bomb stops early). */
class Sink {
  parts: Uint8Array[] = [];
  total = 0;
  expected = 0;
  reset(expected: number): void {
    this.parts = [];
    this.total = 0;
    this.expected = expected;
  }
  add = (d: Uint8Array): void => {
    this.total += d.length;
    if (this.total > this.expected) throw new Error(`inflate generated more than ${this.expected} bytes`);
    this.parts.push(d);
  };
}

class ZlibInflater implements ChannelInflater {
  private readonly sink = new Sink();
  private readonly z = new Unzlib(this.sink.add);
  inflate(payload: Uint8Array, expected: number): Uint8Array {
    this.sink.reset(expected);
    try {
      this.z.push(payload, false);
    } catch (e) {
      throw new Error(`inflate failed: ${(e as Error).message}`);
    }
    return collect(this.sink.parts, expected);
  }
}

class ZstdInflater implements ChannelInflater {
  private readonly sink = new Sink();
  private readonly z = new ZstdDecompress(this.sink.add);
  inflate(payload: Uint8Array, expected: number): Uint8Array {
    this.sink.reset(expected);
    try {
      this.z.push(payload, false);
    } catch (e) {
      throw new Error(`zstd decompress failed: ${(e as Error).message}`);
    }
    return collect(this.sink.parts, expected);
  }
}

/** The portable zlib inflater (fflate), whatever is registered: for checks against node:zlib's. */
export function portableZlibInflater(): ChannelInflater {
  return new ZlibInflater();
}

export function channelInflater(c: MultifdCompression): ChannelInflater {
  switch (c) {
    case 'none':
      return {
        inflate: (p, expected) => {
          if (p.length !== expected) throw new Error(`packet size received ${p.length} size expected ${expected}`);
          return p;
        },
      };
    case 'zlib':
      return inflaters.zlib ? inflaters.zlib() : new ZlibInflater(); // node:zlib under Node, fflate elsewhere
    case 'zstd':
      return inflaters.zstd ? inflaters.zstd() : new ZstdInflater(); // libzstd (zstd-napi) under Node when installed, fzstd elsewhere
    case 'brotli':
      if (!inflaters.brotli) throw new Error('multifd brotli channels need node:zlib: load migstream/node');
      return inflaters.brotli();
    case 'zstd-dedup':
      return new DedupInflater(channelInflater('zstd'));
    default:
      throw new Error(`unknown multifd compression ${c satisfies never}`);
  }
}

/** A compressor with a byte-aligned flush per packet, where the platform has one (node:zlib; a zstd binding). */
export type DeflaterFactory = (level: number, long?: boolean) => ChannelDeflater;
const factories: Partial<Record<MultifdCompression, DeflaterFactory>> = {};
const inflaters: Partial<Record<MultifdCompression, () => ChannelInflater>> = {};

export function registerChannelDeflater(c: MultifdCompression, f: DeflaterFactory): void {
  factories[c] = f;
}

export function registerChannelInflater(c: MultifdCompression, f: () => ChannelInflater): void {
  inflaters[c] = f;
}

export function channelDeflater(c: MultifdCompression, level: number, long = false): ChannelDeflater {
  switch (c) {
    case 'none':
      return { deflate: (p) => p };
    case 'zlib':
      // fflate 0.8's sync flush wrote streams zlib rejects: the deflater comes from node:zlib (src/multifd/node-zlib.ts)
      if (!factories.zlib) throw new Error('multifd zlib encoding needs node:zlib: load migstream/node');
      return factories.zlib(level);
    case 'zstd':
      if (long && !factories.zstd) throw new Error('multifd zstd with a long window needs libzstd (zstd-napi): load migstream/node');
      return factories.zstd ? factories.zstd(level, long) : new ZstdRawDeflater();
    case 'brotli':
      if (!factories.brotli) throw new Error('multifd brotli channels need node:zlib: load migstream/node');
      return factories.brotli(level);
    case 'zstd-dedup':
      return new DedupDeflater(channelDeflater('zstd', level, long));
    default:
      throw new Error(`unknown multifd compression ${c satisfies never}`);
  }
}
