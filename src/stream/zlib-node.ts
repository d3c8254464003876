import { constants, createDeflate, inflateSync } from 'node:zlib';
import { checkLevel, type ZlibPageCodec } from '../codec/zlib-page.js';
import { SyncZlibStream } from '../node/zlib-handle.js';

const OPTIONS = { windowBits: 15, memLevel: 8, strategy: constants.Z_DEFAULT_STRATEGY } as const;

/**
 * One deflate stream per level, reset between pages: the bytes of each page
 * are those of a fresh deflateSync (deflateReset restores deflateInit's
 * state), without building and tearing down a zlib stream per page.
 */
const deflaters: (SyncZlibStream | undefined)[] = [];

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
    const d = (deflaters[level] ??= new SyncZlibStream(createDeflate({ level, ...OPTIONS })));
    try {
      const out = d.process(page, constants.Z_FINISH);
      d.reset();
      return out;
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
