// migstream under Node (the package's `node` export condition): the portable core with Node's codecs
// (node:zlib, the LZ4 wasm kernels) and the worker_threads pool plugged in, so `workers: N` just works.
import './node/install.js';

export * from './index.js';
