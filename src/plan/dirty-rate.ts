import { unitHash, type Trace } from './trace.js';

const MiB = 1 << 20;

/**
 * QEMU 7.2's calc-dirty-rate in page-sampling mode (migration/dirtyrate.c, v7.2.0):
 * record_ramblock_hash_info() skips RAMBlocks under MIN_RAMBLOCK_SIZE (128 MiB),
 * takes (block bytes × sample-pages) >> 30 samples per block
 * (get_ramblock_dirty_info), each a page index drawn uniformly from
 * [0, pages − 1) with g_rand_int_range (so the last page is never sampled,
 * and a page may be drawn twice), and stores the CRC-32 of each sampled page
 * (save_ramblock_hash). After the period, calc_page_dirty_rate() counts the
 * samples whose CRC-32 changed and update_dirtyrate() reports
 * dirty_samples × (block bytes >> 20) × 1000 / (samples × msec) in integer
 * arithmetic: MiB/s, truncated.
 */
export const QEMU_DEFAULT_SAMPLE_PAGES = 512;
export const QEMU_MIN_RAMBLOCK_BYTES = 128 * MiB;

export interface IntervalRate {
  /** Interval k: from snapshot k to k+1. */
  interval: number;
  /** Pages that differ between the two snapshots (a lower bound of what QEMU's dirty log records). */
  pages: number;
  /** pages × page size / seconds, in MiB/s (the unit of QEMU's calc-dirty-rate). */
  mibPerSecond: number;
  /** The same in 1e6 bytes/s. */
  mbPerSecond: number;
}

export interface SampleEstimate {
  interval: number;
  samples: number;
  dirtySamples: number;
  /** QEMU's figure, MiB/s (integer), or null when QEMU would not sample this block. */
  mibPerSecond: number | null;
  /** estimate − exact, MiB/s. */
  errorMiBps: number | null;
  /** (estimate − exact) / exact, or null when exact is 0. */
  relativeError: number | null;
}

export interface WorkingSet {
  /** pagesDirtiedIn[m − 1]: pages that changed in exactly m of the intervals. */
  pagesDirtiedIn: number[];
  /** Pages that changed in at least one interval. */
  total: number;
  /** Pages that changed in every interval. */
  hot: number;
}

export function exactRates(trace: Trace): IntervalRate[] {
  return trace.dirty.map((list, k) => {
    const bytes = list.length * trace.pageSize;
    return { interval: k, pages: list.length, mibPerSecond: bytes / MiB / trace.interval, mbPerSecond: bytes / 1e6 / trace.interval };
  });
}

export function workingSet(trace: Trace): WorkingSet {
  const pagesDirtiedIn = new Array<number>(trace.intervals).fill(0);
  let total = 0;
  for (const n of trace.timesDirty) {
    if (n === 0) continue;
    pagesDirtiedIn[n - 1]!++;
    total++;
  }
  return { pagesDirtiedIn, total, hot: trace.intervals ? pagesDirtiedIn[trace.intervals - 1]! : 0 };
}

/** CRC-32 (IEEE, zlib's crc32(0, …)), what dirtyrate.c hashes a sampled page with. */
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export interface SampleOptions {
  /** sample-pages per GiB; QEMU's default 512. */
  samplePages?: number;
  /** Seed of the page draw (QEMU seeds from the clock; ours is fixed so runs repeat). */
  seed?: number;
  /** Blocks smaller than this are skipped, as QEMU does; default 128 MiB. */
  minBlockBytes?: number;
}

/** QEMU's sampling estimate for each interval of the trace, next to the exact figure. */
export function sampleRates(trace: Trace, options: SampleOptions = {}): SampleEstimate[] {
  const perGiB = options.samplePages ?? QEMU_DEFAULT_SAMPLE_PAGES;
  const blockBytes = trace.pages * trace.pageSize;
  const minBlock = options.minBlockBytes ?? QEMU_MIN_RAMBLOCK_BYTES;
  const samples = Math.floor((blockBytes * perGiB) / 2 ** 30);
  const exact = exactRates(trace);
  const page = new Uint8Array(trace.pageSize);
  const out: SampleEstimate[] = [];
  const skip = blockBytes < minBlock || samples === 0;
  for (let k = 0; k < trace.intervals; k++) {
    if (skip) {
      out.push({ interval: k, samples: 0, dirtySamples: 0, mibPerSecond: null, errorMiBps: null, relativeError: null });
      continue;
    }
    const seed = Math.imul(options.seed ?? 1, 0x01000193) ^ k;
    let dirtySamples = 0;
    for (let i = 0; i < samples; i++) {
      const p = Math.floor(unitHash(i, seed) * (trace.pages - 1));
      trace.source.read(k, p, 1, page);
      const before = crc32(page);
      trace.source.read(k + 1, p, 1, page);
      if (crc32(page) !== before) dirtySamples++;
    }
    const msec = Math.round(trace.interval * 1000);
    const mib = Math.floor((dirtySamples * Math.floor(blockBytes / MiB) * 1000) / (samples * msec));
    const e = exact[k]!.mibPerSecond;
    out.push({ interval: k, samples, dirtySamples, mibPerSecond: mib, errorMiBps: mib - e, relativeError: e === 0 ? null : (mib - e) / e });
  }
  return out;
}

export interface DirtyRateReport {
  pages: number;
  pageSize: number;
  interval: number;
  intervals: IntervalRate[];
  mean: { pages: number; mibPerSecond: number; mbPerSecond: number };
  sampling: { samplePagesPerGiB: number; seed: number; skipped: string | null; estimates: SampleEstimate[]; meanAbsRelativeError: number | null };
  workingSet: WorkingSet;
}

export function dirtyRateReport(trace: Trace, options: SampleOptions = {}): DirtyRateReport {
  const intervals = exactRates(trace);
  const estimates = sampleRates(trace, options);
  const n = Math.max(1, intervals.length);
  const blockBytes = trace.pages * trace.pageSize;
  const minBlock = options.minBlockBytes ?? QEMU_MIN_RAMBLOCK_BYTES;
  const rel = estimates.map((e) => e.relativeError).filter((e): e is number => e !== null);
  return {
    pages: trace.pages,
    pageSize: trace.pageSize,
    interval: trace.interval,
    intervals,
    mean: {
      pages: intervals.reduce((s, r) => s + r.pages, 0) / n,
      mibPerSecond: intervals.reduce((s, r) => s + r.mibPerSecond, 0) / n,
      mbPerSecond: intervals.reduce((s, r) => s + r.mbPerSecond, 0) / n,
    },
    sampling: {
      samplePagesPerGiB: options.samplePages ?? QEMU_DEFAULT_SAMPLE_PAGES,
      seed: options.seed ?? 1,
      skipped: blockBytes < minBlock ? `QEMU samples only RAMBlocks of at least ${minBlock / MiB} MiB; this one has ${blockBytes / MiB} MiB` : null,
      estimates,
      meanAbsRelativeError: rel.length ? rel.reduce((s, e) => s + Math.abs(e), 0) / rel.length : null,
    },
    workingSet: workingSet(trace),
  };
}
