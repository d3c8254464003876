import { createRequire } from 'node:module';
import { concatBytes } from '../codec/concat.js';
import { type ChannelDeflater, type ChannelInflater, registerChannelDeflater, registerChannelInflater } from './channel-codecs.js';

/** The part of zstd-napi's low-level binding used here (libzstd's streaming API, one call = one ZSTD_*Stream*). */
interface ZstdBinding {
  CCtx: new () => {
    setParameter(param: number, value: number): void;
    compressStream2(dst: Uint8Array, src: Uint8Array, endOp: number): [number, number, number];
  };
  DCtx: new () => { decompressStream(dst: Uint8Array, src: Uint8Array): [number, number, number] };
  CParameter: { compressionLevel: number; windowLog: number; enableLongDistanceMatching: number };
  EndDirective: { flush: number };
  versionString(): string;
}

/**
 * libzstd through zstd-napi (an optional native dependency, built by node-gyp at install when no
 * prebuilt binary can be fetched). Absent, migstream keeps its raw-block writer and fzstd.
 */
function load(): ZstdBinding | undefined {
  try {
    return createRequire(import.meta.url)('zstd-napi/binding') as ZstdBinding;
  } catch {
    return undefined;
  }
}

const zstd = load();

/** libzstd's version when the native binding loaded ("1.5.7"), else undefined: multifd zstd uses the portable fallbacks. */
export const nativeZstdVersion: string | undefined = zstd?.versionString();

/** Output buffer: a 128-page packet (512 KiB) compresses into one piece even when it does not compress. */
const OUT = (1 << 19) + (1 << 16);

/**
 * One never-ended zstd frame per channel, ZSTD_e_flush after each packet: what QEMU 7.2's
 * multifd-zstd.c does, so every packet's payload decodes alone, in order, on the destination.
 */
export function nativeZstdDeflater(level: number, long = false): ChannelDeflater {
  const z = zstd!;
  const cctx = new z.CCtx();
  cctx.setParameter(z.CParameter.compressionLevel, level);
  if (long) {
    // 2^27 is the largest window a decoder accepts by default (QEMU's libzstd too)
    cctx.setParameter(z.CParameter.windowLog, 27);
    cctx.setParameter(z.CParameter.enableLongDistanceMatching, 1);
  }
  const out = new Uint8Array(OUT);
  return {
    deflate(pages) {
      const parts: Uint8Array[] = [];
      let src = pages;
      for (;;) {
        const [remaining, produced, consumed] = cctx.compressStream2(out, src, z.EndDirective.flush);
        if (produced > 0) parts.push(out.slice(0, produced));
        src = src.subarray(consumed);
        if (remaining === 0 && src.length === 0) break;
      }
      return concatBytes(parts);
    },
  };
}

/** A channel's packets through one DCtx, each checked to inflate to exactly its pages (a bomb stops at the limit). */
export function nativeZstdInflater(): ChannelInflater {
  const z = zstd!;
  const dctx = new z.DCtx();
  return {
    fresh: true,
    inflate(payload, expected) {
      // one byte more than expected: output that does not fit is a packet larger than its header says
      const out = new Uint8Array(expected + 1);
      let produced = 0;
      let src = payload;
      try {
        for (;;) {
          const [, n, consumed] = dctx.decompressStream(out.subarray(produced), src);
          produced += n;
          src = src.subarray(consumed);
          if (produced > expected) throw new Error(`inflate generated more than ${expected} bytes`);
          if (src.length === 0 && n === 0) break;
          if (n === 0 && consumed === 0) break;
        }
      } catch (e) {
        throw new Error(`zstd decompress failed: ${(e as Error).message}`);
      }
      if (produced !== expected) throw new Error(`packet size received ${produced} size expected ${expected}`);
      return out.subarray(0, expected);
    },
  };
}

if (zstd) {
  registerChannelDeflater('zstd', nativeZstdDeflater);
  registerChannelInflater('zstd', nativeZstdInflater);
}
