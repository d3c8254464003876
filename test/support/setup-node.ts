// Tests run under Node: load what migstream/node plugs in (node:zlib and lz4-wasm-nodejs as the default codecs,
// the worker pool, the XXH64 hasher), as the package's `node` export condition does for users.
import '../../src/node/install.js';
