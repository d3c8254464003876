import type { CompressionSpec } from '../stream/page-codecs.js';
import type { CachePolicy } from '../xbzrle/page-cache.js';

/** What a setting mainly exercises; the HTML report colours by it. */
export type SettingGroup = 'plain' | 'zlib' | 'lz4' | 'xbzrle' | 'xbzrle+lz4' | 'xbzrle+zlib';

/** One way of putting the dump series on the wire. */
export interface BenchSetting {
  /** Stable key, e.g. "zlib6-w2", "xbzrle-16MiB-qemu". */
  id: string;
  /** Human name without the worker count, e.g. "zlib 6", "XBZRLE 16 MiB QEMU + LZ4 acc 1". */
  label: string;
  group: SettingGroup;
  compress?: CompressionSpec;
  xbzrle?: { cacheBytes: number; policy: CachePolicy };
  /** Worker threads compressing and decompressing; 0: everything on the main thread. */
  workers: number;
}

const MiB = 1 << 20;

/** XBZRLE cache budgets of the full run (QEMU's default xbzrle-cache-size is the last). */
export const XBZRLE_BUDGETS = [1 * MiB, 4 * MiB, 16 * MiB, 64 * MiB];
export const ZLIB_LEVELS = [1, 6, 9];
export const LZ4_ACCELERATIONS = [1, 8, 16];

export function sizeLabel(bytes: number): string {
  return bytes >= MiB ? `${bytes / MiB} MiB` : `${bytes / 1024} KiB`;
}

/**
 * Budgets that make sense for a RAMBlock of `ramBytes`: those no larger than
 * it, or else the largest power of two that fits (at least 4 KiB, the QEMU
 * policy's minimum).
 */
export function budgetsFor(ramBytes: number): number[] {
  const fit = XBZRLE_BUDGETS.filter((b) => b <= ramBytes);
  if (fit.length) return fit;
  let b = 4096;
  while (b * 2 <= ramBytes) b *= 2;
  return [b];
}

function zlib(level: number, workers: number): BenchSetting {
  return { id: `zlib${level}-w${workers}`, label: `zlib ${level}`, group: 'zlib', compress: { codec: 'zlib', level }, workers };
}

function lz4(acceleration: number, workers: number): BenchSetting {
  return { id: `lz4a${acceleration}-w${workers}`, label: `LZ4 acc ${acceleration}`, group: 'lz4', compress: { codec: 'lz4', acceleration }, workers };
}

function xbzrle(cacheBytes: number, policy: CachePolicy): BenchSetting {
  const size = sizeLabel(cacheBytes).replace(' ', '');
  return {
    id: `xbzrle-${size}-${policy}`,
    label: `XBZRLE ${sizeLabel(cacheBytes)} ${policy === 'lru' ? 'LRU' : 'QEMU'}`,
    group: 'xbzrle',
    xbzrle: { cacheBytes, policy },
    workers: 0,
  };
}

function combo(cacheBytes: number, compress: CompressionSpec, workers: number): BenchSetting {
  const x = xbzrle(cacheBytes, 'lru');
  const c = compress.codec === 'lz4' ? lz4(compress.acceleration ?? 1, workers) : zlib(compress.level ?? 1, workers);
  return {
    id: `${x.id}+${c.id}`,
    label: `${x.label} + ${c.label}`,
    group: compress.codec === 'lz4' ? 'xbzrle+lz4' : 'xbzrle+zlib',
    xbzrle: x.xbzrle,
    compress,
    workers,
  };
}

export const PLAIN: BenchSetting = { id: 'plain', label: 'zero detection only', group: 'plain', workers: 0 };

/**
 * The settings of a run. Full: zero detection only; zlib 1/6/9 and LZ4
 * acceleration 1/8/16 on each worker count; XBZRLE at every budget with the
 * LRU and the QEMU cache; XBZRLE (QEMU's default 64 MiB cache, or the largest
 * budget that fits) with LZ4 acc 1 and with zlib 1 on each worker count.
 * Quick: zero detection, zlib 1 and LZ4 acc 1 on each worker count, XBZRLE
 * at the smallest budget with both caches, XBZRLE + LZ4 on the most workers.
 */
export function benchSettings(ramBytes: number, options: { quick?: boolean; workers?: number[] } = {}): BenchSetting[] {
  const workers = options.workers ?? [1, 2];
  const budgets = budgetsFor(ramBytes);
  const comboBudget = budgets[budgets.length - 1]!;
  const out: BenchSetting[] = [PLAIN];
  if (options.quick) {
    for (const w of workers) out.push(zlib(1, w));
    for (const w of workers) out.push(lz4(1, w));
    out.push(xbzrle(budgets[0]!, 'lru'), xbzrle(budgets[0]!, 'qemu'));
    out.push(combo(budgets[0]!, { codec: 'lz4', acceleration: 1 }, Math.max(...workers)));
    return out;
  }
  for (const level of ZLIB_LEVELS) for (const w of workers) out.push(zlib(level, w));
  for (const acc of LZ4_ACCELERATIONS) for (const w of workers) out.push(lz4(acc, w));
  for (const b of budgets) for (const policy of ['lru', 'qemu'] as const) out.push(xbzrle(b, policy));
  for (const w of workers) out.push(combo(comboBudget, { codec: 'lz4', acceleration: 1 }, w));
  for (const w of workers) out.push(combo(comboBudget, { codec: 'zlib', level: 1 }, w));
  return out;
}
