import { Lz4Compressor } from '../codec/lz4-block.js';
import { concatBytes } from '../codec/concat.js';
import { setZeroScan } from '../codec/zero.js';
import { registerCodecs } from '../stream/codec-table.js';
import { digestsReady } from '../stream/digest.js';
import {
  LZ4_KERNEL_MAX_FAST_PAGE,
  LZ4_KERNEL_MAX_PAGE,
  lz4KernelCompressPages,
  lz4KernelCompressView,
  lz4KernelDecompressInto,
  lz4KernelDecompressPages,
} from '../codec/kernels/lz4-kernels.js';
import { lz4WasmCompress } from '../stream/lz4-wasm.js';
import { setPoolFactory } from '../stream/pool/pool-factory.js';
import { ThreadPool } from '../stream/pool/thread-pool.js';
import { nodeZlib } from '../stream/zlib-node.js';
import '../multifd/node-zlib.js'; // multifd zlib channels: node:zlib's sync flush (registers itself)
import '../multifd/node-zstd.js'; // multifd zstd channels: libzstd via zstd-napi when installed (registers itself)
import { nodeZeroScan } from './zero-scan.js';

/** Whether lz4.c's kernels take pages of `size` bytes: lz4_flex's bytes below 64 KiB, liblz4's (an acceleration) up to 64 KiB + 11. */
function kernelTakes(size: number, acceleration: number | undefined): boolean {
  return size <= (acceleration === undefined ? LZ4_KERNEL_MAX_PAGE : LZ4_KERNEL_MAX_FAST_PAGE);
}

/** One block, a view valid until the next call: the kernels, else (block chunks) lz4_flex itself or migstream's liblz4 port. */
function lz4View(page: Uint8Array, acceleration?: number): Uint8Array {
  if (kernelTakes(page.length, acceleration)) return lz4KernelCompressView(page, acceleration);
  return acceleration === undefined ? lz4WasmCompress(page) : new Lz4Compressor(acceleration).compressView(page);
}

/** The contiguous batch form: one kernel call, or one block per page past the kernels' limit. */
function lz4Pages(pages: Uint8Array, pageSize: number, acceleration?: number): { data: Uint8Array; sizes: Uint32Array } {
  if (kernelTakes(pageSize, acceleration)) return lz4KernelCompressPages(pages, pageSize, acceleration);
  const blocks: Uint8Array[] = [];
  for (let at = 0; at < pages.length; at += pageSize) blocks.push(lz4View(pages.subarray(at, at + pageSize), acceleration).slice());
  return { data: concatBytes(blocks), sizes: Uint32Array.from(blocks, (b) => b.length) };
}

/**
 * Plugs Node's pieces into the portable core: node:zlib and the LZ4 wasm
 * kernels (lz4_flex's bytes) become the default codecs, `workers: N` runs on worker_threads, and the
 * zero-page test is a native memcmp.
 * Importing migstream/node (or migstream under Node) does it. Idempotent.
 */
export function installNode(): void {
  registerCodecs('node', {
    zlib: nodeZlib,
    lz4Compress: (page) => (kernelTakes(page.length, undefined) ? lz4KernelCompressView(page).slice() : lz4View(page)),
    lz4CompressView: (page) => lz4View(page),
    lz4CompressFastView: (page, acceleration) => lz4View(page, acceleration),
    lz4DecompressInto: lz4KernelDecompressInto,
    lz4CompressPages: lz4Pages,
    lz4DecompressPages: lz4KernelDecompressPages,
  });
  setPoolFactory((workers) => new ThreadPool(workers));
  setZeroScan(nodeZeroScan);
}

installNode();
await digestsReady(); // so synchronous decodes can check iteration digests from the first line on
