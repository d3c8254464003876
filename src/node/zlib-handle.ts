/** The native handle behind a node:zlib stream (what node:zlib's own *Sync functions drive; not in @types/node). */
interface ZlibHandle {
  onerror: (message: string, errno: number) => void;
  writeSync(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): void;
  reset(): void;
}
type WithHandle = { _handle: ZlibHandle; _writeState: Uint32Array };

/**
 * Runs one node:zlib stream (deflate, inflate, brotli) synchronously through
 * its native handle, keeping its state between calls: node:zlib's *Sync
 * functions build and close a stream per call, which costs more than the
 * work on a 4 KiB page and cannot carry a multifd channel's one stream
 * across packets.
 */
export class SyncZlibStream {
  private readonly handle: ZlibHandle;
  private readonly state: Uint32Array;
  private out: Uint8Array;
  private error: Error | undefined;

  constructor(stream: unknown, outBytes = 8192) {
    this.handle = (stream as WithHandle)._handle;
    this.state = (stream as WithHandle)._writeState;
    this.out = new Uint8Array(outBytes);
    // Bad input: the native side reports through onerror (node:zlib would destroy the stream and emit an
    // unhandled 'error' event); keep the message and throw it from process(): the stream is dead after it.
    this.handle.onerror = (message) => {
      this.error ??= new Error(message);
    };
  }

  /** Feeds `input` ending with `flush` and returns a copy of everything it produced; more than `limit` bytes is an error. */
  process(input: Uint8Array, flush: number, limit = Number.POSITIVE_INFINITY): Uint8Array {
    let inOff = 0;
    let inLen = input.length;
    let produced = 0;
    for (;;) {
      if (this.error) throw this.error;
      this.handle.writeSync(flush, input, inOff, inLen, this.out, produced, this.out.length - produced);
      if (this.error) throw this.error;
      const availOut = this.state[0]!;
      const availIn = this.state[1]!;
      produced = this.out.length - availOut;
      if (produced > limit) throw new Error(`inflate generated more than ${limit} bytes`);
      inOff += inLen - availIn;
      inLen = availIn;
      if (availOut !== 0) break; // output space left over: all of it is out
      // one byte past a finite limit is enough to tell an oversized output
      const grown = new Uint8Array(Math.min(this.out.length * 2, limit + 1));
      grown.set(this.out);
      this.out = grown;
    }
    return this.out.slice(0, produced);
  }

  /** deflateReset / inflateReset: the state of a freshly created stream, the buffers kept. */
  reset(): void {
    this.handle.reset();
  }
}
