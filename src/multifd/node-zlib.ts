import { constants, createBrotliCompress, createBrotliDecompress, createDeflate, createInflate } from 'node:zlib';
import { type ChannelDeflater, type ChannelInflater, registerChannelDeflater, registerChannelInflater } from './channel-codecs.js';
import { concatBytes } from '../codec/concat.js';

/** The native handle behind a node:zlib stream (what node:zlib's own *Sync functions drive; not in @types/node). */
interface ZlibHandle {
  onerror: (message: string, errno: number) => void;
  writeSync(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): void;
}
type WithHandle = { _handle: ZlibHandle; _writeState: Uint32Array };

/**
 * Runs one node:zlib stream synchronously through its native handle, keeping
 * its state between calls (node:zlib's *Sync functions close the stream after
 * one call). Each call ends with `flush`: the output so far is complete.
 */
class SyncStream {
  private readonly handle: ZlibHandle;
  private readonly state: Uint32Array;
  private readonly out = new Uint8Array(1 << 16);

  constructor(
    stream: unknown,
    private readonly flush: number,
  ) {
    this.handle = (stream as WithHandle)._handle;
    this.state = (stream as WithHandle)._writeState;
    // Bad input: the native side reports through onerror (node:zlib would destroy the stream and emit an
    // unhandled 'error' event); keep the message and throw it from process(), the stream is dead after it.
    this.handle.onerror = (message) => {
      this.error ??= new Error(message);
    };
  }

  private error: Error | undefined;

  process(input: Uint8Array, limit = Number.POSITIVE_INFINITY): Uint8Array {
    const parts: Uint8Array[] = [];
    let total = 0;
    let inOff = 0;
    let inLen = input.length;
    for (;;) {
      if (this.error) throw this.error;
      this.handle.writeSync(this.flush, input, inOff, inLen, this.out, 0, this.out.length);
      if (this.error) throw this.error;
      const availOut = this.state[0]!;
      const availIn = this.state[1]!;
      const n = this.out.length - availOut;
      total += n;
      if (total > limit) throw new Error(`inflate generated more than ${limit} bytes`);
      parts.push(this.out.slice(0, n));
      inOff += inLen - availIn;
      inLen = availIn;
      if (availOut !== 0) break; // done: output space was left over
    }
    return concatBytes(parts);
  }
}

/**
 * multifd zlib channels on node:zlib: one deflate stream per channel, Z_SYNC_FLUSH after each packet as QEMU
 * does (multifd-zlib.c). fflate 0.8's flush(true) was seen to write streams zlib rejects ("invalid stored
 * block lengths"), so zlib encoding needs Node.
 */
registerChannelDeflater('zlib', (level): ChannelDeflater => {
  const s = new SyncStream(createDeflate({ level, windowBits: 15, memLevel: 8 }), constants.Z_SYNC_FLUSH);
  return { deflate: (pages) => s.process(pages) };
});

/**
 * migstream's own channel form between two relays (never sent to QEMU): one brotli stream per channel with a
 * 4 MiB window, flushed after each packet (docs/multifd.md: fewer bytes than QEMU's multifd zstd-1).
 */
registerChannelDeflater('brotli', (level): ChannelDeflater => {
  const s = new SyncStream(
    createBrotliCompress({ params: { [constants.BROTLI_PARAM_QUALITY]: level, [constants.BROTLI_PARAM_LGWIN]: 22 } }),
    constants.BROTLI_OPERATION_FLUSH,
  );
  return { deflate: (pages) => s.process(pages) };
});

/** Checks an inflated packet against its page count (QEMU: "packet size received N size expected M"). */
function sized(name: string, s: SyncStream): ChannelInflater {
  return {
    inflate(payload, expected) {
      let out: Uint8Array;
      try {
        out = s.process(payload, expected);
      } catch (e) {
        throw new Error(`${name}: ${(e as Error).message}`);
      }
      if (out.length !== expected) throw new Error(`packet size received ${out.length} size expected ${expected}`);
      return out;
    },
  };
}

registerChannelInflater('zlib', () => sized('inflate', new SyncStream(createInflate(), constants.Z_SYNC_FLUSH)));
registerChannelInflater('brotli', () => sized('brotli', new SyncStream(createBrotliDecompress(), constants.BROTLI_OPERATION_FLUSH)));
