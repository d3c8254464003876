// migstream/node: Node adapters for the stream surface, Node's codecs and worker pool (plugged in on import),
// and the file helpers the CLI uses.
import './install.js';

export { installNode } from './install.js';
export { transcodeTransform, decodeTransform, readFileChunks } from './adapters.js';
export { ThreadPool, PoolError, InlinePool } from '../stream/pool/thread-pool.js';
export { nodeZlib } from '../stream/zlib-node.js';
export { decodeFile, FileRamSink, FileDiskSink, AutoRamStore, DigestCheck, ramBlockFileName, diskFileName } from '../stream/files.js';
