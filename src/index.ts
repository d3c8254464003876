// migstream: the portable core. No node:* module, no Buffer, no top-level await: it loads in Node, Deno, Bun and
// browsers. Under Node the package's `node` condition loads index.node.ts instead, which adds Node's codecs and
// worker pool; migstream/node has the Node adapters and file helpers.

// Stream surface (WHATWG streams, backpressure, workers, AbortSignal)
export { TranscodeStream, bufferBound, type TranscodeStreamOptions, type TranscodeSummary } from './web/transcode-stream.js';
export { DecodeStream, decodeEvents, type DecodeStreamOptions, type ByteChunks } from './web/decode-stream.js';
export { EncodeStream, type EncodeStreamOptions } from './web/encode-stream.js';
export type { StreamControlOptions } from './web/connect.js';
export type { PoolOptions } from './stream/drive.js';
export type { PagePool } from './stream/pool/pool.js';
export type { PoolTask, PoolResult, CompressTask, CompressResult, DecompressTask, DecompressResult } from './stream/pool/tasks.js';

// Decode: one-shot and incremental
export { StreamDecoder, decodeAll, DEFAULT_LIMITS, type DecoderLimits, type DecoderOptions, type PageTarget } from './stream/decoder.js';
export type { PageInflater } from './stream/inflate.js';

// Transcode: one-shot and incremental
export { Transcoder, transcodeBytes, DEFAULT_XBZRLE_CACHE, type TranscodeOptions } from './stream/transcode.js';

// Encode: RAM dumps (and disks) to a stream, one-shot and incremental; the record writer
export {
  encodeDumps,
  readTemplate,
  type DumpSeries,
  type StreamTemplate,
  type DumpEncodeOptions,
  type DumpEncodeResult,
  type DumpWriter,
} from './stream/dump-encoder.js';
export { StreamEncoder, type EncoderOptions, type StreamWriter, type RamRecordWriter, type PageCompressorFn } from './stream/encoder.js';
export { SnapshotDiskSource, WriteLogDiskSource, parseWriteLog, formatWriteLog, type DiskSource, type Extent } from './stream/disk-source.js';
export type { XbzrleIterationStats } from './stream/ram-sender.js';
export type { BlockIterationStats } from './stream/block-sender.js';

// Events
export type * from './stream/events.js';
export { cloneEvent } from './stream/clone-event.js';
export type { DirtyBitmapRecord } from './stream/dirty-bitmap.js';
export type { ExtensionManifest, ExtensionEntry } from './stream/manifest.js';

// Errors
export { MigstreamError, OutputClosedError, isStreamFault, type ErrorCode, type ErrorContext } from './codec/errors.js';

// Types options name
export type { CompressionSpec, CompressionCodec, ResolvedSpec } from './stream/page-codecs.js';
export type { CachePolicy } from './xbzrle/page-cache.js';
export type { DigestAlgorithm } from './stream/digest.js';
export type { RamStore, RamSink, RamImage } from './stream/ram-image.js';

// Codecs: the one table they are injected through, and the hasher's readiness (sync decodes of digested streams)
export { registerCodecs, codecSet, defaultImpl, portableCodecs, type PageCodecSet, type CodecImpl } from './stream/codec-table.js';
export { digestsReady } from './stream/digest.js';
