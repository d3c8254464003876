// migstream/sinks: where decoded RAM, disks and statistics go. Portable (no Node APIs).
export { RamImage, applyPage, type RamSink, type RamStore } from './stream/ram-image.js';
export { DiskImage } from './stream/disk-image.js';
export {
  StatsCollector,
  type StreamSummary,
  type IterationStats,
  type BlockDeviceStats,
  type DirtyBitmapStats,
  type CompressionStats,
  type DigestStats,
  type KindCount,
  type PageCounts,
} from './stream/stats.js';
export { IterationDigests, VerifyingRamStore, digestsReady, type DigestAlgorithm } from './stream/digest.js';
