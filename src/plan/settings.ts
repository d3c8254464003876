import { cpus } from 'node:os';
import { StreamEncoder } from '../stream/encoder.js';
import { encoderCompressor, resolveSpec, type CompressionSpec } from '../stream/page-codecs.js';
import { RamSender } from '../stream/ram-sender.js';
import { createPageCache, type CachePolicy } from '../xbzrle/page-cache.js';
import type { Trace } from './trace.js';

/** One way of sending the guest's pages: QEMU's zero detection always, plus XBZRLE and/or page compression. */
export interface PlanSetting {
  /** Stable key, e.g. "plain", "xbzrle-64M-qemu", "zlib1-w2", "xbzrle-64M-lru+lz4a1-w2". */
  id: string;
  label: string;
  compress?: CompressionSpec;
  xbzrle?: { cacheBytes: number; policy: CachePolicy };
  /** Compression worker threads (QEMU's compress-threads); 0 for settings without compression. */
  workers: number;
}

/** Pages per second the sender's codec manages: the first full pass, and later rounds. */
export interface CodecRate {
  bulk: number;
  delta: number;
}

const MiB = 1 << 20;

function sizeText(bytes: number): string {
  return bytes % MiB === 0 ? `${bytes / MiB}M` : bytes % 1024 === 0 ? `${bytes / 1024}K` : String(bytes);
}

/**
 * Parses one setting: parts joined by "+", each `plain`, `xbzrle[:SIZE[:lru|qemu]]`,
 * `zlib[:LEVEL]` or `lz4[:ACCELERATION]`, and an optional `/wN` worker count
 * for the compressed part (default 1). E.g. `xbzrle:64M:qemu`, `zlib:1/w2`, `xbzrle:16M+lz4/w2`.
 */
export function parseSetting(text: string): PlanSetting {
  const [body, w] = text.trim().split('/');
  const workers = w === undefined ? 1 : /^w(\d{1,2})$/.exec(w) ? Number(w.slice(1)) : NaN;
  if (!Number.isInteger(workers) || workers < 1) throw new RangeError(`setting "${text}": worker suffix is /wN with N ≥ 1`);
  let compress: CompressionSpec | undefined;
  let xbzrle: PlanSetting['xbzrle'];
  let plain = false;
  for (const part of body!.split('+')) {
    const [name, a, b, extra] = part.split(':');
    if (extra !== undefined) throw new RangeError(`setting "${text}": too many fields in "${part}"`);
    if (name === 'plain' && a === undefined) plain = true;
    else if (name === 'xbzrle' && !xbzrle) {
      const cacheBytes = a ? parseSizeText(a, text) : 64 * MiB;
      const policy = (b ?? 'qemu') as CachePolicy;
      if (policy !== 'lru' && policy !== 'qemu') throw new RangeError(`setting "${text}": cache policy is lru or qemu`);
      createPageCache(policy, cacheBytes); // validates the size for the policy
      xbzrle = { cacheBytes, policy };
    } else if ((name === 'zlib' || name === 'lz4') && !compress && b === undefined) {
      const n = a === undefined ? 1 : Number(a);
      compress = name === 'zlib' ? { codec: 'zlib', level: n } : { codec: 'lz4', acceleration: n };
      resolveSpec(compress); // validates level / acceleration
    } else throw new RangeError(`setting "${text}": unknown or repeated part "${part}"`);
  }
  if (plain && (compress || xbzrle)) throw new RangeError(`setting "${text}": plain combines with nothing`);
  return describe(xbzrle, compress, compress ? workers : 0);
}

function parseSizeText(s: string, text: string): number {
  const m = /^(\d+)([KMG]?)$/i.exec(s);
  if (!m) throw new RangeError(`setting "${text}": cache size "${s}" is not like 64M`);
  return Number(m[1]) * { '': 1, K: 1024, M: MiB, G: 1024 * MiB }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G'];
}

export function describe(xbzrle: PlanSetting['xbzrle'], compress: CompressionSpec | undefined, workers: number): PlanSetting {
  const ids: string[] = [];
  const labels: string[] = [];
  if (xbzrle) {
    ids.push(`xbzrle-${sizeText(xbzrle.cacheBytes)}-${xbzrle.policy}`);
    labels.push(`XBZRLE ${sizeText(xbzrle.cacheBytes)}iB ${xbzrle.policy === 'lru' ? 'LRU' : 'QEMU cache'}`);
  }
  if (compress) {
    const z = compress.codec === 'zlib';
    ids.push(`${z ? `zlib${compress.level ?? 1}` : `lz4a${compress.acceleration ?? 1}`}-w${workers}`);
    labels.push(`${z ? `zlib ${compress.level ?? 1}` : `LZ4 acc ${compress.acceleration ?? 1}`} · ${workers}w`);
  }
  if (!ids.length) return { id: 'plain', label: 'zero detection only', workers: 0 };
  return { id: ids.join('+'), label: labels.join(' + '), xbzrle, compress, workers };
}

/** The settings `plan` tries when none are given: QEMU's choices and ours, on 2 workers. */
export const DEFAULT_SETTINGS = ['plain', 'xbzrle:64M:qemu', 'xbzrle:64M:lru', 'zlib:1/w2', 'lz4:1/w2', 'xbzrle:64M:lru+lz4:1/w2'];

/**
 * The parallel speed-up a setting's worker count can have: no more than the
 * cores it gets (which may be a fraction of a core each when the host is
 * oversubscribed, see hostShare).
 */
export function workerFactor(setting: PlanSetting, cpuCount = cpus().length): number {
  return setting.compress ? Math.max(0.05, Math.min(setting.workers, cpuCount)) : 1;
}

/** The source host, as far as CPU goes: its cores and how many of the guest's vCPUs are busy. */
export interface HostCpu {
  cores: number;
  vcpus: number;
}

/**
 * The share of a core each busy thread gets while the setting's compression
 * runs flat out: QEMU's compression threads, the migration thread feeding
 * them page by page, and the guest's busy vCPUs all want a core, and the
 * scheduler splits the host's cores evenly among them. 1 for settings
 * without compression (XBZRLE runs on the migration thread alone).
 */
export function hostShare(setting: PlanSetting, host: HostCpu): number {
  if (!setting.compress) return 1;
  return Math.min(1, host.cores / (host.vcpus + setting.workers + 1));
}

/** Timed runs per measurement; the fastest counts. */
const REPEATS = 3;

/**
 * Measures the setting's encode speed on this machine, on the trace's own
 * pages: `bulk` over up to `samplePages` pages spread over snapshot 0 (a first
 * pass), `delta` over up to `samplePages` pages that changed in interval 0,
 * re-sent against a cache primed with their previous content (later rounds).
 * Single-thread pages/s times workerFactor: the workers are assumed to
 * scale up to the CPU count, which the report says.
 */
export function measureCodecRate(trace: Trace, setting: PlanSetting, samplePages = 2048, cpuCount = cpus().length): CodecRate {
  const ps = trace.pageSize;
  const step = Math.max(1, Math.floor(trace.pages / samplePages));
  const bulkPages: number[] = [];
  for (let p = 0; p < trace.pages && bulkPages.length < samplePages; p += step) bulkPages.push(p);
  const deltaPages = trace.intervals ? Array.from(trace.dirty[0]!.subarray(0, samplePages)) : [];
  const spec = setting.compress ? resolveSpec(setting.compress) : undefined;
  const enc = new StreamEncoder(() => {}, { pageSize: ps, compressor: spec && encoderCompressor(spec) });
  const cache = setting.xbzrle ? createPageCache(setting.xbzrle.policy, setting.xbzrle.cacheBytes, ps) : undefined;
  const sender = new RamSender(enc, { cache, compress: spec?.codec });
  sender.setBlocks([{ idstr: 'pc.ram', length: trace.pages * ps }]);
  // Only the encoding is timed: the sample is read into memory first, as a sender has its RAM there.
  const time = (pages: number[], dump: number, resend: boolean): number => {
    const buf = new Uint8Array(pages.length * ps);
    pages.forEach((p, i) => trace.source.read(dump, p, 1, buf.subarray(i * ps, (i + 1) * ps)));
    const t0 = performance.now();
    for (let i = 0; i < pages.length; i++) sender.send('pc.ram', pages[i]! * ps, buf.subarray(i * ps, (i + 1) * ps), resend);
    return (performance.now() - t0) / 1000;
  };
  const factor = workerFactor(setting, cpuCount);
  // The fastest of a few runs: on a shared machine one slow run is the load, not the codec (the first warms the JIT up).
  let bulkSeconds = Infinity;
  for (let i = 0; i < REPEATS; i++) bulkSeconds = Math.min(bulkSeconds, time(bulkPages, 0, false));
  const bulk = bulkPages.length / Math.max(bulkSeconds, 1e-6);
  if (deltaPages.length === 0) return { bulk: bulk * factor, delta: bulk * factor };
  let deltaSeconds = Infinity;
  for (let i = 0; i < REPEATS; i++) {
    time(deltaPages, 0, true); // primes the cache with the old content (not timed as a round)
    sender.endIteration();
    deltaSeconds = Math.min(deltaSeconds, time(deltaPages, 1, true));
    sender.endIteration();
  }
  return { bulk: bulk * factor, delta: (deltaPages.length / Math.max(deltaSeconds, 1e-6)) * (setting.xbzrle ? 1 : factor) };
}
