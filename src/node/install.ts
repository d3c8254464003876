import { Lz4Compressor } from '../codec/lz4-block.js';
import { setZeroScan } from '../codec/zero.js';
import { registerCodecs } from '../stream/codec-table.js';
import { digestsReady } from '../stream/digest.js';
import {
  LZ4_KERNEL_MAX_FAST_PAGE,
  LZ4_KERNEL_MAX_PAGE,
  lz4KernelCompress,
  lz4KernelCompressBatch,
  lz4KernelCompressView,
  lz4KernelDecompressBatch,
  lz4KernelDecompressInto,
} from '../codec/kernels/lz4-kernels.js';
import { lz4WasmCompress, lz4WasmCompressBatch } from '../stream/lz4-wasm.js';
import { setPoolFactory } from '../stream/pool/pool-factory.js';
import { ThreadPool } from '../stream/pool/thread-pool.js';
import { nodeZlib } from '../stream/zlib-node.js';
import '../multifd/node-zlib.js'; // multifd zlib channels: node:zlib's sync flush (registers itself)
import '../multifd/node-zstd.js'; // multifd zstd channels: libzstd via zstd-napi when installed (registers itself)
import { nodeZeroScan } from './zero-scan.js';

/**
 * Plugs Node's pieces into the portable core: node:zlib and the LZ4 wasm
 * kernels (lz4_flex's bytes) become the default codecs, `workers: N` runs on worker_threads, and the
 * zero-page test is a native memcmp.
 * Importing migstream/node (or migstream under Node) does it. Idempotent.
 */
export function installNode(): void {
  registerCodecs('node', {
    zlib: nodeZlib,
    // lz4.c's kernels write lz4_flex's bytes below 64 KiB; larger inputs (block chunks) go to lz4_flex itself
    lz4Compress: (page) => (page.length <= LZ4_KERNEL_MAX_PAGE ? lz4KernelCompress(page) : lz4WasmCompress(page)),
    lz4CompressView: (page) => (page.length <= LZ4_KERNEL_MAX_PAGE ? lz4KernelCompressView(page) : lz4WasmCompress(page)),
    lz4CompressFastView: (page, acceleration) =>
      page.length <= LZ4_KERNEL_MAX_FAST_PAGE ? lz4KernelCompressView(page, acceleration) : new Lz4Compressor(acceleration).compressView(page),
    lz4DecompressInto: lz4KernelDecompressInto,
    lz4CompressBatch: (pages, pageSize) => (pageSize <= LZ4_KERNEL_MAX_PAGE ? lz4KernelCompressBatch(pages, pageSize) : lz4WasmCompressBatch(pages, pageSize)),
    lz4DecompressBatch: lz4KernelDecompressBatch,
  });
  setPoolFactory((workers) => new ThreadPool(workers));
  setZeroScan(nodeZeroScan);
}

installNode();
await digestsReady(); // so synchronous decodes can check iteration digests from the first line on
