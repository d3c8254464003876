export { MigstreamError, type ErrorCode, type ErrorContext } from './codec/errors.js';
export { ByteReader } from './codec/byte-reader.js';
export { ByteWriter } from './codec/byte-writer.js';
export { isZeroPage } from './codec/zero.js';
export { xbzrleDecode } from './xbzrle/decode.js';
export { StreamDecoder, decodeAll, DEFAULT_LIMITS, type DecoderLimits, type DecoderOptions } from './stream/decoder.js';
export { StreamEncoder, type EncoderOptions } from './stream/encoder.js';
export { RamImage, applyPage, type RamSink, type RamStore } from './stream/ram-image.js';
export { IterationDigests, VerifyingRamStore, type DigestAlgorithm } from './stream/digest.js';
export { Transcoder, transcodeBytes, type TranscodeOptions } from './stream/transcode.js';
export { StatsCollector, type StreamSummary, type IterationStats } from './stream/stats.js';
export { decodeFile, FileRamSink, FileDiskSink, AutoRamStore, DigestCheck, ramBlockFileName, diskFileName } from './stream/files.js';
export type * from './stream/events.js';
export { encodeDumps, encodeSteps, readTemplate, type DumpSeries, type StreamTemplate, type DumpEncodeOptions, type DumpEncodeResult } from './stream/dump-encoder.js';
export { RamSender, type XbzrleIterationStats } from './stream/ram-sender.js';
export { BlockSender, type BlockIterationStats } from './stream/block-sender.js';
export { SnapshotDiskSource, WriteLogDiskSource, parseWriteLog, formatWriteLog, type DiskSource } from './stream/disk-source.js';
export { DiskImage } from './stream/disk-image.js';
export { HierarchicalBitmap } from './codec/hbitmap.js';
export { LruPageCache, QemuPageCache, createPageCache, type PageCache, type CachePolicy } from './xbzrle/page-cache.js';
export { fflateZlib, type ZlibPageCodec } from './codec/zlib-page.js';
export { Lz4Compressor, lz4DecompressInto, lz4Bound } from './codec/lz4-block.js';
export { nodeZlib } from './stream/zlib-node.js';
export { resolveSpec, pageCompressor, type CompressionSpec, type CompressionCodec } from './stream/page-codecs.js';
export {
  encodeManifest,
  decodeManifest,
  lz4PagesEntry,
  blockChunksEntry,
  chunkCompressionEntry,
  iterationDigestsEntry,
  DIGEST_ALGORITHMS,
  SUPPORTED_EXTENSIONS,
  type ExtensionManifest,
  type ExtensionEntry,
} from './stream/manifest.js';
export { type StreamWriter, type RamRecordWriter } from './stream/encoder.js';
export { ThreadPool, InlinePool, PoolError, type PagePool } from './stream/pool/thread-pool.js';
export { PooledEncoder, type PooledEncoderOptions } from './stream/pool/pooled-encoder.js';
export { DecompressQueue, type DecompressQueueOptions } from './stream/pool/decompress-queue.js';
export { decodePooled, encodeDumpsPooled, transcodePooled, transcodeBytesPooled, fileSink, type PoolOptions, type ByteSource } from './stream/pool/drivers.js';
export { PiscinaPool } from './stream/pool/piscina-pool.js';
export * from './plan/index.js';
export { commandInfo, decodePackage, type CommandInfo, type PackageInfo, type PackagedCommand } from './stream/commands.js';
export { encodeCommand, encodePackaged, encodeReturnPath } from './stream/command-encoder.js';
export { ReturnPathDecoder, type ReturnPathEvent } from './stream/return-path.js';
export { PreemptDecoder } from './stream/preempt.js';
export { Relay, type RelayOptions, type RelayResult, type ConnectionSummary } from './relay/relay.js';
export { replayRecording, type ReplayResult } from './relay/replay.js';
export { decodeRecording } from './relay/decode-recording.js';
export { readRecording, type RecordedConnection } from './relay/recording.js';
export { parseUri, type SocketAddress } from './relay/uri.js';
