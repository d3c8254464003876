import { constants, createBrotliCompress, createBrotliDecompress, createDeflate, createInflate } from 'node:zlib';
import { type ChannelDeflater, type ChannelInflater, registerChannelDeflater, registerChannelInflater } from './channel-codecs.js';
import { SyncZlibStream } from '../node/zlib-handle.js';

/**
 * multifd zlib channels on node:zlib: one deflate stream per channel, Z_SYNC_FLUSH after each packet as QEMU
 * does (multifd-zlib.c). fflate 0.8's flush(true) was seen to write streams zlib rejects ("invalid stored
 * block lengths"), so zlib encoding needs Node.
 */
registerChannelDeflater('zlib', (level): ChannelDeflater => {
  const s = new SyncZlibStream(createDeflate({ level, windowBits: 15, memLevel: 8 }), 1 << 16);
  return { deflate: (pages) => s.process(pages, constants.Z_SYNC_FLUSH) };
});

/**
 * migstream's own channel form between two relays (never sent to QEMU): one brotli stream per channel with a
 * 4 MiB window, flushed after each packet (docs/multifd.md: fewer bytes than QEMU's multifd zstd-1).
 */
registerChannelDeflater('brotli', (level): ChannelDeflater => {
  const s = new SyncZlibStream(createBrotliCompress({ params: { [constants.BROTLI_PARAM_QUALITY]: level, [constants.BROTLI_PARAM_LGWIN]: 22 } }), 1 << 16);
  return { deflate: (pages) => s.process(pages, constants.BROTLI_OPERATION_FLUSH) };
});

/** Checks an inflated packet against its page count (QEMU: "packet size received N size expected M"). */
function sized(name: string, s: SyncZlibStream, flush: number): ChannelInflater {
  return {
    fresh: true, // SyncZlibStream.process returns a copy
    inflate(payload, expected) {
      let out: Uint8Array;
      try {
        out = s.process(payload, flush, expected);
      } catch (e) {
        throw new Error(`${name}: ${(e as Error).message}`);
      }
      if (out.length !== expected) throw new Error(`packet size received ${out.length} size expected ${expected}`);
      return out;
    },
  };
}

registerChannelInflater('zlib', () => sized('inflate', new SyncZlibStream(createInflate(), 1 << 16), constants.Z_SYNC_FLUSH));
registerChannelInflater('brotli', () => sized('brotli', new SyncZlibStream(createBrotliDecompress(), 1 << 16), constants.BROTLI_OPERATION_FLUSH));
