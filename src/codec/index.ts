export { MigstreamError, NeedMoreData, type ErrorCode, type ErrorContext } from './errors.js';
export { ByteReader } from './byte-reader.js';
export { ByteWriter } from './byte-writer.js';
export { isZeroPage } from './zero.js';
export { fflateZlib, adler32, type ZlibPageCodec } from './zlib-page.js';
export { Lz4Compressor, lz4DecompressInto, lz4Bound, LZ4_MAX_ACCELERATION } from './lz4-block.js';
export { concatBytes } from './concat.js';
