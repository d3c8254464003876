import { setZeroScan } from '../codec/zero.js';
import { registerCodecs } from '../stream/codec-table.js';
import { digestsReady } from '../stream/digest.js';
import { lz4WasmCompress, lz4WasmCompressBatch, lz4WasmDecompressBatch } from '../stream/lz4-wasm.js';
import { setPoolFactory } from '../stream/pool/pool-factory.js';
import { ThreadPool } from '../stream/pool/thread-pool.js';
import { nodeZlib } from '../stream/zlib-node.js';
import '../multifd/node-zlib.js'; // multifd zlib channels: node:zlib's sync flush (registers itself)
import '../multifd/node-zstd.js'; // multifd zstd channels: libzstd via zstd-napi when installed (registers itself)
import { nodeZeroScan } from './zero-scan.js';

/**
 * Plugs Node's pieces into the portable core: node:zlib and lz4-wasm-nodejs
 * become the default codecs, `workers: N` runs on worker_threads, and the
 * zero-page test is a native memcmp.
 * Importing migstream/node (or migstream under Node) does it. Idempotent.
 */
export function installNode(): void {
  registerCodecs('node', {
    zlib: nodeZlib,
    lz4Compress: lz4WasmCompress,
    lz4DecompressInto(block, out) {
      const error = lz4WasmDecompressBatch([block], out.length, out);
      if (error) throw new Error(error.message);
    },
    lz4CompressBatch: lz4WasmCompressBatch,
    lz4DecompressBatch: lz4WasmDecompressBatch,
  });
  setPoolFactory((workers) => new ThreadPool(workers));
  setZeroScan(nodeZeroScan);
}

installNode();
await digestsReady(); // so synchronous decodes can check iteration digests from the first line on
