import { constants, deflateSync, inflateSync } from 'node:zlib';
import { checkLevel, type ZlibPageCodec } from '../codec/zlib-page.js';

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
    const out = deflateSync(page, { level, windowBits: 15, memLevel: 8, strategy: constants.Z_DEFAULT_STRATEGY });
    return new Uint8Array(out.buffer, out.byteOffset, out.length);
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
