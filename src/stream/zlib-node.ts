import { constants, createDeflate, inflateSync } from 'node:zlib';
import { checkLevel, type ZlibPageCodec } from '../codec/zlib-page.js';

/** The native handle behind a node:zlib stream (what node:zlib's own *Sync functions drive; not in @types/node). */
interface ZlibHandle {
  onerror: (message: string, errno: number) => void;
  writeSync(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): void;
  reset(): void;
}

const OPTIONS = { windowBits: 15, memLevel: 8, strategy: constants.Z_DEFAULT_STRATEGY } as const;

/**
 * One deflate stream per level, reset between pages: the bytes of each page
 * are those of a fresh deflateSync (deflateReset restores deflateInit's
 * state), without building and tearing down a zlib stream per page.
 */
class PageDeflater {
  private readonly handle: ZlibHandle;
  private readonly state: Uint32Array;
  private out = new Uint8Array(8192);
  private error: string | undefined;

  constructor(level: number) {
    const s = createDeflate({ level, ...OPTIONS }) as unknown as { _handle: ZlibHandle; _writeState: Uint32Array };
    this.handle = s._handle;
    this.state = s._writeState;
    this.handle.onerror = (message) => {
      this.error ??= message;
    };
  }

  deflate(page: Uint8Array): Uint8Array {
    let inOff = 0;
    let inLen = page.length;
    let produced = 0;
    for (;;) {
      this.handle.writeSync(constants.Z_FINISH, page, inOff, inLen, this.out, produced, this.out.length - produced);
      if (this.error) throw new Error(this.error);
      const availOut = this.state[0]!;
      const availIn = this.state[1]!;
      produced = this.out.length - availOut;
      inOff += inLen - availIn;
      inLen = availIn;
      if (availOut !== 0) break; // Z_FINISH with room left: the stream is complete
      const grown = new Uint8Array(this.out.length * 2);
      grown.set(this.out);
      this.out = grown;
    }
    this.handle.reset();
    return this.out.slice(0, produced);
  }
}

const deflaters: (PageDeflater | undefined)[] = [];

/**
 * node:zlib in QEMU's framing: deflate with windowBits 15, memLevel 8 and the
 * default strategy, like qemu-file.c's deflateInit(level). Node bundles its
 * own zlib (Chromium's), so a few percent of pages come out as other, equally
 * valid bytes than QEMU's system zlib writes (test/compress-qemu.test.ts).
 */
export const nodeZlib: ZlibPageCodec = {
  name: 'node:zlib',
  deflate(page, level) {
    checkLevel(level);
    const d = (deflaters[level] ??= new PageDeflater(level));
    try {
      return d.deflate(page);
    } catch (e) {
      deflaters[level] = undefined; // never expected on deflate; a fresh stream for the next page either way
      throw e;
    }
  },
  inflate(src, pageSize) {
    let out: Buffer;
    try {
      out = inflateSync(src, { maxOutputLength: pageSize });
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'ERR_BUFFER_TOO_LARGE') throw new Error(`inflated data exceeds ${pageSize} bytes`);
      throw new Error(err.message);
    }
    return new Uint8Array(out.buffer, out.byteOffset, out.length);
  },
};
