import { hostShare, measureCodecRate, type CodecRate, type HostCpu, type PlanSetting } from './settings.js';
import { simulate, type PlanOptions, type PlanResult } from './simulate.js';
import type { Trace } from './trace.js';

export interface PlanRunOptions extends Omit<PlanOptions, 'codecRate' | 'onProgress'> {
  /**
   * Codec speed per setting: measured on the trace's pages (default), or
   * given (tests and what-ifs; `Infinity` for a link-bound answer).
   */
  codecRate?: 'measure' | CodecRate | ((setting: PlanSetting) => CodecRate);
  /**
   * Host cores the compression workers can use when the codec is measured
   * (default: this machine's CPU count). Ignored when `host` is given.
   */
  cores?: number;
  /**
   * The source host's cores and the guest's busy vCPUs: compression then
   * gets workers × hostShare cores, and the guest runs at hostShare of its
   * speed while the workers are busy (simulate's guestShare).
   */
  host?: HostCpu;
  /** Before each setting, and now and then during it with the simulated seconds reached. */
  onProgress?(index: number, total: number, setting: PlanSetting, seconds: number): void;
}

export interface Recommendation {
  id: string;
  label: string;
  why: string;
}

export interface PlanOutcome {
  results: PlanResult[];
  recommended: Recommendation | null;
  /** Why nothing is recommended, when nothing is. */
  advice: string | null;
}

/** Simulates every setting on the trace and picks one for the link. */
export function planMigration(trace: Trace, settings: PlanSetting[], options: PlanRunOptions): PlanOutcome {
  const results: PlanResult[] = [];
  for (const [i, setting] of settings.entries()) {
    options.onProgress?.(i, settings.length, setting, 0);
    const c = options.codecRate ?? 'measure';
    const share = options.host ? hostShare(setting, options.host) : 1;
    const cores = options.host ? setting.workers * share : options.cores;
    const codecRate = c === 'measure' ? measureCodecRate(trace, setting, undefined, cores) : typeof c === 'function' ? c(setting) : c;
    const guestShare = options.host ? share : options.guestShare;
    results.push(simulate(trace, setting, { ...options, codecRate, guestShare, onProgress: (s) => options.onProgress?.(i, settings.length, setting, s) }));
  }
  return { results, ...recommend(results, options) };
}

/**
 * The converging setting that finishes first (fewer bytes on a tie); with
 * auto-converge, throttling less counts first, since a throttled guest
 * runs slower for the whole migration.
 */
export function recommend(results: PlanResult[], options: Pick<PlanOptions, 'timeCap' | 'autoConverge'> = {}): Omit<PlanOutcome, 'results'> {
  const ok = results.filter((r) => r.converged);
  if (ok.length === 0) {
    const advice = options.autoConverge
      ? `no setting converges within ${options.timeCap ?? 600} s even with auto-converge: more bandwidth, or a longer downtime limit`
      : `no setting converges within ${options.timeCap ?? 600} s: try --throttle auto, more bandwidth or a longer downtime limit`;
    return { recommended: null, advice };
  }
  const best = [...ok].sort((a, b) => a.throttle.final - b.throttle.final || a.totalTime - b.totalTime || a.wireBytes - b.wireBytes)[0]!;
  const others = ok.length - 1;
  const why =
    `converges in ${best.totalTime.toFixed(1)} s with ${(best.wireBytes / 1e6).toFixed(1)} MB on the wire and ${best.final!.downtimeMs.toFixed(0)} ms downtime` +
    (best.throttle.final ? ` at a ${best.throttle.final}% throttle` : '') +
    (others ? `; the fastest of ${ok.length} converging settings` : '; the only converging setting') +
    (results.length > ok.length ? ` (${results.length - ok.length} do not converge)` : '');
  return { recommended: { id: best.setting.id, label: best.setting.label, why }, advice: null };
}
