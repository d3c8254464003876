import { constants, createDeflate } from 'node:zlib';
import { type ChannelDeflater, registerChannelDeflater } from './channel-codecs.js';

/** The native handle behind a node:zlib stream (what node:zlib's own *Sync functions drive; not in @types/node). */
interface ZlibHandle {
  writeSync(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): void;
}

/**
 * A channel's deflate stream on node:zlib, ended by Z_SYNC_FLUSH after each
 * packet as QEMU does (multifd-zlib.c), driven synchronously through the
 * stream's native handle (node:zlib's deflateSync closes its stream after one
 * call; fflate 0.8's flush(true) was seen to write a stream node:zlib rejects
 * as "invalid stored block lengths").
 */
class NodeZlibDeflater implements ChannelDeflater {
  private readonly handle: ZlibHandle;
  private readonly state: Uint32Array;
  private readonly out = new Uint8Array(1 << 16);

  constructor(level: number) {
    const d = createDeflate({ level, windowBits: 15, memLevel: 8 }) as unknown as { _handle: ZlibHandle; _writeState: Uint32Array };
    this.handle = d._handle;
    this.state = d._writeState;
  }

  deflate(pages: Uint8Array): Uint8Array {
    const parts: Uint8Array[] = [];
    let inOff = 0;
    let inLen = pages.length;
    for (;;) {
      this.handle.writeSync(constants.Z_SYNC_FLUSH, pages, inOff, inLen, this.out, 0, this.out.length);
      const availOut = this.state[0]!;
      const availIn = this.state[1]!;
      parts.push(this.out.slice(0, this.out.length - availOut));
      inOff += inLen - availIn;
      inLen = availIn;
      if (availOut !== 0) break; // the flush completed: output space was left over
    }
    const total = parts.reduce((n, p) => n + p.length, 0);
    const r = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      r.set(p, at);
      at += p.length;
    }
    return r;
  }
}

registerChannelDeflater('zlib', (level) => new NodeZlibDeflater(level));
