export { TranscodeStream, bufferBound, type TranscodeStreamOptions, type TranscodeSummary } from './transcode-stream.js';
export { DecodeStream, decodeEvents, type DecodeStreamOptions, type ByteChunks } from './decode-stream.js';
export type { StreamControlOptions } from './connect.js';
