import { StreamEncoder } from '../stream/encoder.js';
import { encoderCompressor, resolveSpec } from '../stream/page-codecs.js';
import { RamSender } from '../stream/ram-sender.js';
import { createPageCache } from '../xbzrle/page-cache.js';
import type { CodecRate, PlanSetting } from './settings.js';
import type { Trace } from './trace.js';

/**
 * Pre-copy on a trace, the way QEMU 7.2.0 runs it (commit b67b00e6b4):
 *
 * - migration_iteration_run() (migration.c) asks ram_save_pending() for the
 *   dirty bytes left, remaining pages × 4096 (raw page bytes, whatever the
 *   codec makes of them); only when that is below threshold_size does it
 *   sync the dirty bitmap (migration_bitmap_sync) and ask again; below the
 *   threshold after the sync, it stops the VM and completes.
 * - threshold_size = bandwidth × downtime-limit, bandwidth being the wire
 *   bytes of the last ≥ 100 ms window over its length
 *   (migration_update_counters, BUFFER_DELAY).
 * - XBZRLE starts after the first full pass (find_dirty_block); compression
 *   is used only until then when both are on (ram_save_target_page).
 * - auto-converge: at a sync more than 1 s after the last check,
 *   migration_trigger_throttle() compares the pages newly dirtied in the
 *   period × 4096 with throttle-trigger-threshold (50 %) of the bytes sent
 *   in it; each time it is above, dirty_rate_high_cnt counts up (it is not
 *   reset when below), and at 2 mig_throttle_guest_down() starts throttling
 *   at cpu-throttle-initial (20 %) or adds cpu-throttle-increment (10 %), at
 *   most max-cpu-throttle (99 %), and the count restarts.
 * - A throttle of p leaves the guest (1 − p) of the time: guest time, and
 *   with it the trace, advances at (1 − p) × wall time.
 * - The stop-and-copy: one more sync, then every dirty page; the downtime
 *   is its bytes at the link's bandwidth (or the codec's speed if slower).
 *
 * Time: a two-stage pipeline, page by page: the codec encodes at its
 * pages/s, the link carries the bytes at the bandwidth, so a round takes
 * about max(bytes / bandwidth, pages / codec rate) and no 100 ms window
 * carries more than the bandwidth. The pending check comes when QEMU makes
 * it: after each ram_save_iterate() call, i.e. each rate-limit window's
 * bytes or 50 ms, or when the dirty pages run out.
 */
export interface PlanOptions {
  /** Link bandwidth, bytes/s (QEMU's max-bandwidth). */
  bandwidth: number;
  /** QEMU's downtime-limit, ms (default 300). */
  downtimeLimitMs?: number;
  /** auto-converge on (QEMU's defaults) or with other parameters. */
  autoConverge?: boolean | AutoConvergeParams;
  /** Hold back pages dirtied in each of the last K syncs until the stop-and-copy (0: off). */
  deferHot?: number;
  /**
   * How the guest's dirtying answers a throttle of p: it runs at (1 − p)^K of
   * its speed. 1 (default) is QEMU's design for a CPU-bound guest (the vCPU
   * gets 1 − p of the time); measured under TCG, the validation guest gave
   * about 2 (docs/planner.md); a guest paced by timers gives less than 1.
   */
  throttleResponse?: number;
  /** Give up after this many seconds of migration (default 600). */
  timeCap?: number;
  /** The codec's pages/s; default unlimited (bandwidth alone). */
  codecRate?: CodecRate;
  /**
   * The guest's speed, as a share of its own, while the compression workers
   * are busy (they, the migration thread and the vCPUs share the host's
   * cores: settings.ts hostShare); scaled by how busy the workers are, page
   * by page (a link-bound round leaves them mostly idle). Default 1.
   */
  guestShare?: number;
  /** Bytes/s during the stop-and-copy; default `bandwidth`. */
  finalBandwidth?: number;
  idstr?: string;
  /** Called now and then with the simulated seconds reached. */
  onProgress?(seconds: number): void;
}

export interface AutoConvergeParams {
  initial?: number;
  increment?: number;
  max?: number;
  /** throttle-trigger-threshold, percent. */
  triggerThreshold?: number;
}

export interface RoundResult {
  index: number;
  /** Wall seconds since the start. */
  start: number;
  end: number;
  pages: number;
  wireBytes: number;
  records: { zero: number; normal: number; xbzrle: number; unchanged: number; compressed: number };
  /** Pages still dirty when the round ended with a sync (including held-back hot pages). */
  pendingAfterSync: number;
  /** Pages the sync found newly dirty. */
  newlyDirty: number;
  /** Hot pages held back in this round. */
  deferred: number;
  /** Throttle in force at the end of the round, percent. */
  throttle: number;
  /** QEMU's bandwidth estimate (bytes/s) and threshold_size (bytes) at the sync. */
  bandwidthEstimate: number;
  thresholdBytes: number;
}

export interface PlanResult {
  setting: PlanSetting;
  converged: boolean;
  /** Why the simulation ended. */
  reason: string;
  rounds: RoundResult[];
  /** QEMU's dirty-sync-count at the end: setup, each sync, the completion's. */
  dirtySyncCount: number;
  /** Wall seconds to the end of the stop-and-copy (or to the cap). */
  totalTime: number;
  /** Bytes on the wire, stop-and-copy included. */
  wireBytes: number;
  /** Stop-and-copy: pages, bytes, ms (null when not converged). */
  final: { pages: number; bytes: number; downtimeMs: number } | null;
  throttle: { final: number; steps: { time: number; percent: number }[] };
  codecRate: CodecRate;
}

const RAM_SECTION = { sectionId: 2, idstr: 'ram', instanceId: 0, versionId: 4 };
const WINDOW = 0.1; // QEMU's BUFFER_DELAY, seconds
const MAX_WAIT = 0.05; // ram.c's MAX_WAIT, seconds

export function simulate(trace: Trace, setting: PlanSetting, options: PlanOptions): PlanResult {
  const bw = options.bandwidth;
  if (!(bw > 0)) throw new RangeError(`bandwidth must be positive, got ${bw}`);
  const downtimeSec = (options.downtimeLimitMs ?? 300) / 1000;
  const cap = options.timeCap ?? 600;
  const rate = options.codecRate ?? { bulk: Infinity, delta: Infinity };
  const ac = options.autoConverge
    ? { initial: 20, increment: 10, max: 99, triggerThreshold: 50, ...(options.autoConverge === true ? {} : options.autoConverge) }
    : undefined;
  const deferK = options.deferHot ?? 0;
  const idstr = options.idstr ?? 'pc.ram';
  const P = trace.pages;
  const ps = trace.pageSize;

  const spec = setting.compress ? resolveSpec(setting.compress) : undefined;
  const enc = new StreamEncoder(() => {}, { pageSize: ps, compressor: spec && encoderCompressor(spec) });
  const cache = setting.xbzrle ? createPageCache(setting.xbzrle.policy, setting.xbzrle.cacheBytes, ps) : undefined;
  const sender = new RamSender(enc, { cache, compress: spec?.codec });
  sender.setBlocks([{ idstr, length: P * ps }]);
  enc
    .header()
    .sectionStart(RAM_SECTION)
    .memSize([{ idstr, length: P * ps }])
    .ramEos()
    .footer(RAM_SECTION.sectionId);

  const pending = new Uint8Array(P).fill(1); // QEMU's bitmap starts all dirty
  let pendingCount = P;
  const streak = new Uint16Array(P); // consecutive syncs that found the page dirty
  const marks = new Uint8Array(P);
  const page = new Uint8Array(ps);

  let t = 0;
  let g = 0;
  let lastSyncG = 0;
  let throttle = 0;
  const steps: { time: number; percent: number }[] = [];
  let dirtySyncCount = 1; // the setup sync (ram_init_bitmaps)
  let estimate = 0;
  let threshold = 0;
  let window = { t: 0, bytes: enc.bytesWritten };
  let period = { start: 0, dirtyPages: 0, xferPrev: enc.bytesWritten };
  let highCount = 0;
  const rounds: RoundResult[] = [];
  let reason = '';
  let converged = false;
  let lastProgress = 0;

  const guestShare = options.guestShare ?? 1;
  if (!(guestShare > 0 && guestShare <= 1)) throw new RangeError(`guestShare must be in (0, 1], got ${guestShare}`);
  const response = options.throttleResponse ?? 1;
  if (!(response >= 0)) throw new RangeError(`throttleResponse must be 0 or more, got ${response}`);
  /** Moves wall time to `to`; `busy` is the fraction of it the codec works (the guest slows by guestShare for that part). */
  const advance = (to: number, busy = 0): void => {
    g += (to - t) * (1 - throttle / 100) ** response * (1 - busy * (1 - guestShare));
    t = to;
    if (t - window.t >= WINDOW) {
      estimate = (enc.bytesWritten - window.bytes) / (t - window.t);
      threshold = estimate * downtimeSec;
      window = { t, bytes: enc.bytesWritten };
    }
    if (options.onProgress && t - lastProgress >= 1) {
      lastProgress = t;
      options.onProgress(t);
    }
  };

  const sendPage = (p: number, resend: boolean, lastStage: boolean): void => {
    trace.source.read(trace.snapshotAt(p, trace.position(g)), p, 1, page);
    sender.send(idstr, p * ps, page, resend, lastStage);
  };

  /** migration_bitmap_sync: the dirty log since the last sync joins the bitmap. */
  const sync = (): number => {
    marks.fill(0);
    trace.dirtied(lastSyncG, g, marks);
    lastSyncG = g;
    dirtySyncCount++;
    let newly = 0;
    for (let p = 0; p < P; p++) {
      if (marks[p]) {
        streak[p]!++;
        if (!pending[p]) {
          pending[p] = 1;
          pendingCount++;
          newly++;
        }
      } else streak[p] = 0;
    }
    period.dirtyPages += newly;
    if (t > period.start + 1) {
      // migration_trigger_throttle, then the period counters restart
      const xfer = enc.bytesWritten - period.xferPrev;
      if (ac && period.dirtyPages * ps > (xfer * ac.triggerThreshold) / 100 && ++highCount >= 2) {
        highCount = 0;
        throttle = throttle === 0 ? ac.initial : Math.min(throttle + ac.increment, ac.max);
        steps.push({ time: t, percent: throttle });
      }
      period = { start: t, dirtyPages: 0, xferPrev: enc.bytesWritten };
    }
    return newly;
  };

  for (let round = 0; ; round++) {
    const start = t;
    const bytesStart = enc.bytesWritten;
    const resend = round > 0; // XBZRLE after the first full pass
    const codec = round === 0 ? rate.bulk : rate.delta;
    // compression's threads run only while pages are compressed: with XBZRLE on, only the first pass (as in QEMU 7.2)
    const compressing = setting.compress !== undefined && !(setting.xbzrle && resend);
    const list: number[] = [];
    let deferred = 0;
    for (let p = 0; p < P; p++) {
      if (!pending[p]) continue;
      if (deferK > 0 && streak[p]! >= deferK) deferred++;
      else list.push(p);
    }
    if (list.length === 0 && deferred > 0) {
      // Nothing else to send: holding the hot pages back would stall, so they go now.
      for (let p = 0; p < P; p++) if (pending[p]) list.push(p);
      deferred = 0;
    }
    enc.sectionPart(RAM_SECTION.sectionId);
    let sent = 0;
    let capped = false;
    let step = { t, bytes: enc.bytesWritten };
    for (const p of list) {
      const b0 = enc.bytesWritten;
      sendPage(p, resend, false);
      pending[p] = 0;
      pendingCount--;
      sent++;
      // two-stage pipeline: the codec has page `sent` ready at start + sent/codec, the link takes it after the previous one
      const to = Math.max(t + (enc.bytesWritten - b0) / bw, start + sent / codec);
      advance(to, compressing && to > t ? Math.min(1, 1 / codec / (to - t)) : 0);
      if (t >= cap) {
        capped = true;
        break;
      }
      // ram_save_iterate returns after a rate-limit window's bytes (max-bandwidth / 10) or MAX_WAIT (50 ms);
      // only then does migration_iteration_run look at the pending bytes (and sync when they are below the threshold)
      if (enc.bytesWritten - step.bytes >= bw * WINDOW || t - step.t >= MAX_WAIT) {
        step = { t, bytes: enc.bytesWritten };
        if (pendingCount * ps < threshold) break;
      }
    }
    enc.ramEos().footer(RAM_SECTION.sectionId);
    const stats = sender.endIteration();
    const roundBytes = enc.bytesWritten - bytesStart;
    const result: RoundResult = {
      index: round,
      start,
      end: t,
      pages: sent,
      wireBytes: roundBytes,
      records: stats.records,
      pendingAfterSync: 0,
      newlyDirty: 0,
      deferred,
      throttle,
      bandwidthEstimate: estimate,
      thresholdBytes: threshold,
    };
    rounds.push(result);
    if (capped) {
      reason = `still ${pendingCount} dirty pages after the ${cap} s cap`;
      break;
    }
    if (pendingCount === 0 && threshold === 0) {
      // pending_size 0 with no bandwidth estimate yet: QEMU completes without a sync here
      converged = true;
      reason = 'nothing left to send';
      break;
    }
    result.newlyDirty = sync();
    result.pendingAfterSync = pendingCount;
    result.throttle = throttle;
    if (pendingCount * ps < threshold || pendingCount === 0) {
      converged = true;
      reason = `${pendingCount} dirty pages (${pendingCount * ps} bytes) below threshold ${Math.round(threshold)} bytes`;
      break;
    }
  }

  let final: PlanResult['final'] = null;
  if (converged) {
    // migration_completion: VM stopped, ram_save_complete syncs once more and sends everything dirty
    sync();
    const bytesStart = enc.bytesWritten;
    let pages = 0;
    enc.sectionEnd(RAM_SECTION.sectionId);
    for (let p = 0; p < P; p++) {
      if (!pending[p]) continue;
      sendPage(p, rounds.length > 1, true);
      pending[p] = 0;
      pages++;
    }
    enc.ramEos().footer(RAM_SECTION.sectionId);
    sender.endIteration();
    const bytes = enc.bytesWritten - bytesStart;
    const seconds = Math.max(bytes / (options.finalBandwidth ?? bw), pages / rate.delta);
    final = { pages, bytes, downtimeMs: seconds * 1000 };
    t += seconds;
  }
  return {
    setting,
    converged,
    reason,
    rounds,
    dirtySyncCount,
    totalTime: t,
    wireBytes: enc.bytesWritten,
    final,
    throttle: { final: throttle, steps },
    codecRate: rate,
  };
}
