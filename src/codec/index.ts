export { MigstreamError, NeedMoreData, type ErrorCode, type ErrorContext } from './errors.js';
export { ByteReader } from './byte-reader.js';
export { ByteWriter } from './byte-writer.js';
export { isZeroPage } from './zero.js';
