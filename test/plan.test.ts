import { crc32 as nodeCrc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { dirtyRateReport, sampleRates, crc32 } from '../src/plan/dirty-rate.js';
import { planMigration, recommend } from '../src/plan/plan.js';
import { hostShare, parseSetting, workerFactor } from '../src/plan/settings.js';
import { simulate } from '../src/plan/simulate.js';
import { MemoryDumpSource, Trace } from '../src/plan/trace.js';

const PS = 4096;
const MiB = 1 << 20;
/** A plain page record after the first: be64 header + 4096 bytes. */
const PAGE_RECORD = 8 + PS;
/** PART section header + RAM EOS + footer around every round. */
const ROUND_FRAMING = 5 + 8 + 5;

/** Deterministic non-zero page content. */
function fill(page: Uint8Array, seed: number): void {
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < page.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    page[i] = (x & 0xff) | 1;
  }
}

/**
 * `dumps` snapshots of `pages` random non-zero pages; `changes(k)` lists the
 * pages rewritten (fully, new content) between snapshot k and k+1.
 */
function series(pages: number, dumps: number, changes: (k: number) => number[]): Uint8Array[] {
  const first = new Uint8Array(pages * PS);
  for (let p = 0; p < pages; p++) fill(first.subarray(p * PS, (p + 1) * PS), p + 1);
  const out = [first];
  for (let k = 0; k + 1 < dumps; k++) {
    const next = out[k]!.slice();
    for (const p of changes(k)) fill(next.subarray(p * PS, (p + 1) * PS), (k + 2) * 100003 + p);
    out.push(next);
  }
  return out;
}

const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);
const plain = parseSetting('plain');

describe('trace', () => {
  it('finds exactly the pages that changed in each interval, and the working set', () => {
    const trace = Trace.build(new MemoryDumpSource(series(64, 4, (k) => (k === 1 ? [3, 9] : [3, 5, 60]))), 2);
    expect(trace.dirty.map((d) => Array.from(d))).toEqual([
      [3, 5, 60],
      [3, 9],
      [3, 5, 60],
    ]);
    const r = dirtyRateReport(trace, { minBlockBytes: 0 });
    expect(r.intervals.map((i) => i.pages)).toEqual([3, 2, 3]);
    expect(r.intervals[0]!.mibPerSecond).toBeCloseTo((3 * PS) / MiB / 2, 12);
    expect(r.workingSet).toEqual({ pagesDirtiedIn: [1, 2, 1], total: 4, hot: 1 });
  });

  it('splits an interval between windows without losing or repeating a page, and content follows the same moments', () => {
    const trace = Trace.build(new MemoryDumpSource(series(512, 3, (k) => range(k * 100, 300))), 1);
    const whole = new Uint8Array(512);
    expect(trace.dirtied(0, 1, whole)).toBe(300);
    for (const cut of [0.1, 0.37, 0.5, 0.9]) {
      const a = new Uint8Array(512);
      const b = new Uint8Array(512);
      const na = trace.dirtied(0, cut, a);
      const nb = trace.dirtied(cut, 1, b);
      expect(na + nb).toBe(300);
      for (let p = 0; p < 512; p++) {
        expect(a[p]! & b[p]!).toBe(0);
        expect(a[p]! | b[p]!).toBe(whole[p]);
        // a page dirtied before `cut` already shows snapshot 1 at `cut`; one dirtied after still shows snapshot 0
        if (whole[p]) expect(trace.snapshotAt(p, cut)).toBe(a[p] ? 1 : 0);
      }
    }
    // windows that end exactly on a lap boundary of a duration with no exact binary form
    // (a trace of 3 × 0.1 s) neither hang nor lose pages: over whole back-and-forth laps every page is marked
    const odd = Trace.build(new MemoryDumpSource(series(512, 4, (k) => range(k * 100, 150))), 0.1);
    for (let lap = 0; lap < 40; lap++) {
      const seen = new Uint8Array(512);
      const T = odd.duration;
      let n = 0;
      for (let j = 0; j < 7; j++) n += odd.dirtied(2 * lap * T + (j * 2 * T) / 7, 2 * lap * T + ((j + 1) * 2 * T) / 7, seen);
      expect(n).toBe(new Set([...range(0, 150), ...range(100, 150), ...range(200, 150)]).size);
    }
    // past the end the trace runs backwards: guest time 2.5 is position 1.5
    expect(trace.position(2.5)).toBe(1.5);
    const all = new Uint8Array(512);
    expect(trace.dirtied(0, 4, all)).toBe(new Set([...range(0, 300), ...range(100, 300)]).size);
  });
});

describe("QEMU's sampling estimator (calc-dirty-rate)", () => {
  it('matches zlib crc32', () => {
    const data = new Uint8Array(PS);
    fill(data, 7);
    expect(crc32(data)).toBe(nodeCrc32(data));
  });

  const pages = 8192; // 32 MiB
  const opts = { samplePages: 16384, minBlockBytes: 0 }; // (32 MiB × 16384) >> 30 = 512 samples
  it('gives the exact rate when every page or no page changes', () => {
    const all = sampleRates(Trace.build(new MemoryDumpSource(series(pages, 2, () => range(0, pages))), 1), opts);
    expect(all[0]).toMatchObject({ samples: 512, dirtySamples: 512, mibPerSecond: 32, errorMiBps: 0 });
    const none = sampleRates(Trace.build(new MemoryDumpSource(series(pages, 2, () => [])), 2), opts);
    expect(none[0]).toMatchObject({ samples: 512, dirtySamples: 0, mibPerSecond: 0 });
  });

  it('estimates a known half-dirty rate within the binomial spread, in whole MiB/s', () => {
    const trace = Trace.build(new MemoryDumpSource(series(pages, 3, () => range(0, pages).filter((p) => p % 2 === 0))), 1);
    for (const e of sampleRates(trace, opts)) {
      // 512 samples of p = 0.5: 4 σ is 45 samples, 2.8 MiB/s of 16
      expect(Math.abs(e.dirtySamples - 256)).toBeLessThanOrEqual(45);
      expect(e.mibPerSecond).toBe(Math.floor((e.dirtySamples * 32 * 1000) / (512 * 1000)));
      expect(Math.abs(e.errorMiBps!)).toBeLessThanOrEqual(3);
    }
  });

  it('skips a RAMBlock under 128 MiB as QEMU does, unless told otherwise', () => {
    const trace = Trace.build(new MemoryDumpSource(series(256, 2, () => [1])), 1);
    expect(sampleRates(trace)[0]).toMatchObject({ samples: 0, mibPerSecond: null });
    expect(dirtyRateReport(trace).sampling.skipped).toMatch(/128 MiB/);
  });
});

describe('codec speed for the cores compression gets', () => {
  it('workers scale up to the cores given, never below one', () => {
    expect(workerFactor(parseSetting('zlib:1/w2'), 1)).toBe(1);
    expect(workerFactor(parseSetting('zlib:1/w2'), 4)).toBe(2);
    expect(workerFactor(parseSetting('lz4:1/w4'), 3)).toBe(3);
    expect(workerFactor(parseSetting('xbzrle:1M:lru'), 8)).toBe(1); // XBZRLE runs on QEMU's migration thread
    expect(workerFactor(parseSetting('zlib:1/w2'), 0.5)).toBe(0.5); // an oversubscribed host: half a core in all
  });

  it('hostShare: compression threads, the migration thread and busy vCPUs split the cores', () => {
    expect(hostShare(parseSetting('zlib:1/w2'), { cores: 2, vcpus: 1 })).toBe(0.5);
    expect(hostShare(parseSetting('lz4:1/w4'), { cores: 16, vcpus: 4 })).toBe(1);
    expect(hostShare(parseSetting('zlib:1/w4'), { cores: 4, vcpus: 3 })).toBe(0.5);
    expect(hostShare(parseSetting('xbzrle:1M:lru'), { cores: 1, vcpus: 8 })).toBe(1);
    expect(hostShare(plain, { cores: 1, vcpus: 8 })).toBe(1);
  });

  it('a codec-bound round at guestShare 0.5 lets the guest dirty what half the time dirties', () => {
    // 300 different pages change in each 1 s interval; 1024 pages at 400 pages/s: a 2.56 s first round
    const trace = Trace.build(new MemoryDumpSource(series(1024, 4, (k) => range(k * 300, 300))), 1);
    const run = (guestShare: number) =>
      simulate(trace, parseSetting('zlib:1/w2'), { bandwidth: 1 << 30, codecRate: { bulk: 400, delta: 400 }, guestShare, timeCap: 30 }).rounds[0]!;
    const full = run(1);
    const half = run(0.5);
    // the same wall time (the codec sets it; the round stops a little early, below QEMU's threshold)
    expect(full.end).toBeGreaterThan(2);
    expect(half.end).toBeCloseTo(full.end, 6);
    // 300 pages per second of guest time: the whole wall time at share 1, half of it at 0.5
    expect(Math.abs(full.newlyDirty - 300 * full.end)).toBeLessThan(45);
    expect(Math.abs(half.newlyDirty - 300 * (full.end / 2))).toBeLessThan(45);
  });

  it('guestShare slows nothing without compression, nor in XBZRLE rounds after the first pass', () => {
    const trace = Trace.build(new MemoryDumpSource(series(1024, 4, (k) => range(k * 300, 300))), 1);
    const opts = { bandwidth: 1 << 30, codecRate: { bulk: 400, delta: 400 }, timeCap: 30 };
    const plainRounds = (share: number) => simulate(trace, plain, { ...opts, guestShare: share }).rounds.map((r) => r.newlyDirty);
    expect(plainRounds(0.5)).toEqual(plainRounds(1));
    const combo = parseSetting('xbzrle:4M:lru+zlib:1/w2');
    const a = simulate(trace, combo, { ...opts, guestShare: 0.5 });
    const b = simulate(trace, combo, { ...opts, guestShare: 1 });
    expect(a.rounds[0]!.newlyDirty).toBeLessThan(b.rounds[0]!.newlyDirty * 0.75); // the compressed first pass
    expect(() => simulate(trace, plain, { ...opts, guestShare: 0 })).toThrow(RangeError);
  });

  it('a link-bound round slows the guest only for the part the codec works', () => {
    const trace = Trace.build(new MemoryDumpSource(series(1024, 4, (k) => range(k * 300, 300))), 1);
    // the link takes 2.56 s for the round (about 1 KiB per random page after zlib does not shrink it: ~4 KiB each);
    // the codec at 4000 pages/s works a tenth of it
    const run = (guestShare: number) =>
      simulate(trace, parseSetting('zlib:1/w2'), { bandwidth: (1024 * 4110) / 2.56, codecRate: { bulk: 4000, delta: 4000 }, guestShare, timeCap: 30 })
        .rounds[0]!;
    const full = run(1);
    const half = run(0.5);
    expect(half.end).toBeCloseTo(full.end, 6);
    // guest time ≈ 0.95 of the wall time: a few percent fewer pages, never half
    expect(half.newlyDirty).toBeLessThanOrEqual(full.newlyDirty);
    expect(half.newlyDirty).toBeGreaterThan(full.newlyDirty * 0.85);
  });
});

describe('pre-copy simulator', () => {
  it('a guest that dirties nothing: one round, every page once, exact bytes, QEMU’s three syncs', () => {
    const pages = 256;
    const trace = Trace.build(new MemoryDumpSource(series(pages, 3, () => [])), 1);
    const bw = MiB;
    const r = simulate(trace, plain, { bandwidth: bw, downtimeLimitMs: 300 });
    expect(r.converged).toBe(true);
    expect(r.rounds).toHaveLength(1);
    // As in QEMU, the pass stops at the first pending check below bandwidth × downtime (76 pages
    // here, checked every 100 ms of bytes), and the stop-and-copy sends the rest.
    const round = r.rounds[0]!;
    expect(round.pages + r.final!.pages).toBe(pages);
    expect(r.final!.pages * PS).toBeLessThan(round.thresholdBytes);
    expect(round.thresholdBytes).toBeCloseTo(bw * 0.3, 0);
    expect(round.records.normal).toBe(round.pages);
    expect(r.dirtySyncCount).toBe(3); // setup, the sync after the pass, the completion's
    // header 8, section start 17, MEM_SIZE 23, EOS 8, footer 5; the first page names its block (1 + 6 bytes)
    const setup = 8 + 17 + 23 + 8 + 5;
    const framing = ROUND_FRAMING + 5 + 8 + 5; // the pass's PART, EOS, footer; the END section's
    expect(r.wireBytes).toBe(setup + framing + 7 + pages * PAGE_RECORD);
    expect(round.wireBytes).toBe(ROUND_FRAMING + 7 + round.pages * PAGE_RECORD);
    // link-bound: the pass takes its page bytes at the bandwidth
    expect(round.end).toBeCloseTo((round.wireBytes - ROUND_FRAMING) / bw, 9);
  });

  // 256 pages (1 MiB) rewritten every second, on a 512 KiB/s link: a round of the whole
  // set takes 2 s, in which all of it is dirtied again.
  const hotTrace = () => Trace.build(new MemoryDumpSource(series(512, 4, () => range(0, 256))), 1);
  const slowLink = { bandwidth: 512 * 1024, downtimeLimitMs: 300, timeCap: 120 };

  it('a guest dirtying faster than the link never converges without throttling', () => {
    const r = simulate(hotTrace(), plain, slowLink);
    expect(r.converged).toBe(false);
    expect(r.totalTime).toBeGreaterThanOrEqual(120);
    expect(r.final).toBeNull();
    expect(r.throttle.steps).toEqual([]);
    // every later round re-sends most of the set (a 2 s window crosses each page's change moment
    // except where the replay turns around), far above the 37 pages the 300 ms allow
    for (const round of r.rounds.slice(2, -1)) expect(round.pages).toBeGreaterThan(200);
  });

  // A round of n dirty pages takes n × 4104 / 512 KiB s, in which the guest dirties 256 × (1 − p)
  // pages a second: n shrinks by f(p) = (1 − p) × 256 × 4104 / 524288 = 2.004 (1 − p) per round.
  const f = (p: number) => ((1 - p / 100) * 256 * PAGE_RECORD) / 524288;
  it('converges with auto-converge: QEMU raises the throttle until the guest dirties less than half what is sent', () => {
    const r = simulate(hotTrace(), plain, { ...slowLink, autoConverge: true });
    expect(r.converged).toBe(true);
    // QEMU's steps: 20 %, then +10 % each time
    expect(r.throttle.steps.map((s) => s.percent)).toEqual(range(0, r.throttle.steps.length).map((i) => 20 + 10 * i));
    // Rounds shrink from 60 % on (f = 0.80); the trigger keeps raising it while dirty > 50 % of sent,
    // i.e. while f > 0.5, which holds up to 70 % (f = 0.60) and stops at 80 % (f = 0.40). So the
    // migration converges at 60, 70 or 80 %; how fast the rounds shrink at 60 % decides which.
    expect(f(50)).toBeGreaterThan(1);
    expect(f(60)).toBeLessThan(1);
    expect(f(70)).toBeGreaterThan(0.5);
    expect(f(80)).toBeLessThan(0.5);
    expect([60, 70, 80]).toContain(r.throttle.final);
    expect(r.final!.downtimeMs).toBeLessThanOrEqual(300 * 1.05);
  });

  it('throttleResponse K: a throttle of p leaves (1 − p)^K of the dirtying', () => {
    // K = 2 at 40 %: 0.36 of the speed, f = 2.004 × 0.36 = 0.72 < 1, rounds shrink; at K = 1, f(40) = 1.2 does not
    const squared = simulate(hotTrace(), plain, { ...slowLink, autoConverge: { initial: 40, increment: 0 }, throttleResponse: 2 });
    expect(squared.converged).toBe(true);
    expect(new Set(squared.throttle.steps.map((s) => s.percent))).toEqual(new Set([40])); // increment 0: it stays at 40
    const linear = simulate(hotTrace(), plain, { ...slowLink, autoConverge: { initial: 40, increment: 0 }, throttleResponse: 1 });
    expect(linear.converged).toBe(false);
    // K = 0: the throttle does not slow this guest at all, so even 99 % never converges
    const deaf = simulate(hotTrace(), plain, { ...slowLink, autoConverge: true, throttleResponse: 0 });
    expect(deaf.converged).toBe(false);
    expect(deaf.throttle.final).toBe(99);
    expect(() => simulate(hotTrace(), plain, { ...slowLink, throttleResponse: -1 })).toThrow(RangeError);
  });

  it('with a first throttle step that already halves the dirtying, converges at exactly that step', () => {
    // f(80) = 0.40: rounds shrink and dirty stays under 50 % of sent, so no second step
    const r = simulate(hotTrace(), plain, { ...slowLink, autoConverge: { initial: 80 } });
    expect(r.converged).toBe(true);
    expect(r.throttle.steps.map((s) => s.percent)).toEqual([80]);
    // and one below the line never converges: at 40 % (f = 1.2) the throttle must keep rising
    const low = simulate(hotTrace(), plain, { ...slowLink, autoConverge: { initial: 40, increment: 0 } });
    expect(low.converged).toBe(false);
    expect(low.throttle.final).toBe(40);
  });

  it('auto-converge stops at max-cpu-throttle', () => {
    const r = simulate(hotTrace(), plain, { ...slowLink, bandwidth: 64 * 1024, autoConverge: { increment: 50, max: 99 } });
    expect(r.throttle.steps.map((s) => s.percent).slice(0, 3)).toEqual([20, 70, 99]);
  });

  it('holding back a hot set takes exactly its pages out of every later round and sends them at the end', () => {
    const hot = range(0, 40);
    // 40 hot pages rewritten all the time; 100 cold ones rewritten once, 50 in interval 1 and 50 in 2
    const trace = Trace.build(new MemoryDumpSource(series(512, 5, (k) => [...hot, ...(k === 1 || k === 2 ? range(100 + 50 * k, 50) : [])])), 1);
    trace.hotAlwaysDirty = true;
    // 0.5 s rounds; a 10 ms downtime allows 10 pages, fewer than the hot set: neither run converges
    const opts = { bandwidth: 4 * MiB, downtimeLimitMs: 10, timeCap: 12 };
    const base = simulate(trace, plain, opts);
    for (const round of base.rounds.slice(1, -1)) {
      expect(round.deferred).toBe(0);
      expect(round.pages).toBeGreaterThanOrEqual(hot.length);
    }
    const K = 2;
    const held = simulate(trace, plain, { ...opts, deferHot: K });
    let checked = 0;
    for (const [i, round] of held.rounds.slice(0, -1).entries()) {
      if (i < K) {
        expect(round.deferred).toBe(0);
        continue;
      }
      const dirtyAtStart = held.rounds[i - 1]!.pendingAfterSync;
      if (dirtyAtStart === hot.length) continue; // only hot pages dirty: with nothing else to send they go
      // the round sends its dirty pages but the 40, 4104 bytes each: 40 × 4104 bytes less than sending all
      expect(round.deferred).toBe(hot.length);
      expect(round.pages).toBe(dirtyAtStart - hot.length);
      expect(round.wireBytes).toBe(ROUND_FRAMING + (dirtyAtStart - hot.length) * PAGE_RECORD);
      checked++;
    }
    expect(checked).toBeGreaterThan(3);
  });

  it('XBZRLE sends small changes as deltas and the stop rule still counts raw pages', () => {
    const pages = 512;
    const dumps = series(pages, 4, () => []);
    // 64 pages each get an 8-byte counter changed per interval
    for (let k = 1; k < 4; k++) for (let p = 0; p < 64; p++) dumps[k]![p * PS + 100 + k] ^= 0xff;
    const trace = Trace.build(new MemoryDumpSource(dumps), 1);
    const x = simulate(trace, parseSetting('xbzrle:1M:lru'), { bandwidth: 256 * 1024, downtimeLimitMs: 50 });
    const p = simulate(trace, plain, { bandwidth: 256 * 1024, downtimeLimitMs: 50 });
    const later = x.rounds.slice(2);
    expect(later.some((r) => r.records.xbzrle > 0)).toBe(true);
    expect(x.wireBytes).toBeLessThan(p.wireBytes);
  });

  it('recommends the fastest converging setting, and says when none converges', () => {
    const trace = hotTrace();
    const out = planMigration(trace, [plain, parseSetting('lz4:1')], { ...slowLink, codecRate: { bulk: Infinity, delta: Infinity } });
    expect(out.results.every((r) => !r.converged)).toBe(true);
    expect(out.recommended).toBeNull();
    expect(out.advice).toMatch(/--throttle auto/);
    const quiet = Trace.build(new MemoryDumpSource(series(64, 2, () => [])), 1);
    const ok = planMigration(quiet, [plain], { bandwidth: MiB, codecRate: { bulk: Infinity, delta: Infinity } });
    expect(recommend(ok.results).recommended?.id).toBe('plain');
  });
});

describe('settings', () => {
  it('parses QEMU and migstream settings', () => {
    expect(parseSetting('plain')).toMatchObject({ id: 'plain', workers: 0 });
    expect(parseSetting('xbzrle:16M:lru+lz4:8/w2')).toMatchObject({
      id: 'xbzrle-16M-lru+lz4a8-w2',
      xbzrle: { cacheBytes: 16 * MiB, policy: 'lru' },
      compress: { codec: 'lz4', acceleration: 8 },
      workers: 2,
    });
    expect(parseSetting('zlib:9')).toMatchObject({ id: 'zlib9-w1', compress: { codec: 'zlib', level: 9 } });
    for (const bad of ['gzip', 'zlib:12', 'xbzrle:3M:qemu', 'plain+zlib', 'zlib/w0', 'lz4+lz4']) expect(() => parseSetting(bad)).toThrow(RangeError);
  });
});
