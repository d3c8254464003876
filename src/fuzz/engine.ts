/**
 * The fuzz loop: builds each case from (run seed, case index), runs it with a
 * time bound, confirms and minimises what it finds, and writes regressions.
 */
import { makeMultifdCase } from './multifd-target.js';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Seed } from './corpus.js';
import { hostileLz4, hostileStream, hostileXbzrle, hostileZlib } from './generate.js';
import { mutate } from './mutate.js';
import { Rng, caseSeed } from './rng.js';
import { fingerprint, runCase, targetsOf, type ExtraCodecs, type Finding, type FuzzCase, NO_EXTRAS } from './targets.js';

export interface Corpus {
  seeds: Seed[];
  /** Cumulative weights for picking a seed. */
  cumulative: number[];
  /** Real XBZRLE deltas and zlib pages found in the seeds. */
  xbzrle: Uint8Array[];
  zlib: Uint8Array[];
  /** The valid seeds and what they decode to, for the reference check. */
  references: { seed: Seed; trace: string }[];
}

export function prepareCorpus(seeds: Seed[]): Corpus {
  let sum = 0;
  const cumulative = seeds.map((s) => (sum += s.weight));
  const xbzrle: Uint8Array[] = [];
  const zlib: Uint8Array[] = [];
  for (const s of seeds) {
    for (const g of s.map.regions) {
      if (g.kind === 'xbzrle') xbzrle.push(s.bytes.slice(g.at, g.at + g.len));
      if (g.kind === 'zlib') zlib.push(s.bytes.slice(g.at, g.at + g.len));
    }
  }
  return { seeds, cumulative, xbzrle, zlib, references: [] };
}

function pickSeed(r: Rng, c: Corpus): Seed {
  const x = (r.u32() / 0x100000000) * c.cumulative[c.cumulative.length - 1]!;
  const i = c.cumulative.findIndex((w) => w > x);
  return c.seeds[i < 0 ? c.seeds.length - 1 : i]!;
}

export interface MadeCase {
  c: FuzzCase;
  /** How it was made, for the regression's JSON. */
  how: string;
}

/** The case for one index: a mutated seed, a generated hostile stream, or a page-decoder input. */
export function makeCase(r: Rng, corpus: Corpus, extract = false): MadeCase {
  const roll = r.int(100);
  if (roll < 12) {
    const pageSize = r.pick([4096, 4096, 4096, 1024, 65536, 1 + r.int(5000), 0, 8, 16]);
    let bytes: Uint8Array;
    if (corpus.xbzrle.length && r.chance(0.5)) {
      bytes = r.pick(corpus.xbzrle).slice();
      const k = 1 + r.int(3);
      for (let i = 0; i < k && bytes.length; i++) bytes[r.int(bytes.length)] = r.pick([0, 1, 0x7f, 0x80, 0xff, r.int(256)]);
      if (r.chance(0.2)) bytes = bytes.subarray(0, r.int(bytes.length + 1));
    } else bytes = hostileXbzrle(r, pageSize || 4096);
    return { c: { kind: 'xbzrle', bytes, pageSize, align: r.int(8), fill: r.int(256) }, how: 'xbzrle' };
  }
  if (roll < 17) {
    const pageSize = r.pick([4096, 4096, 1024, 65536]);
    let bytes = corpus.zlib.length && r.chance(0.3) ? r.pick(corpus.zlib).slice() : hostileZlib(r, pageSize);
    if (r.chance(0.3) && bytes.length) bytes[r.int(bytes.length)]! ^= 1 << r.int(8);
    if (r.chance(0.1)) bytes = bytes.subarray(0, r.int(bytes.length + 1));
    return { c: { kind: 'zlib', bytes, pageSize }, how: 'zlib' };
  }
  if (roll < 20) {
    const pageSize = r.pick([4096, 4096, 1024, 65536]);
    return { c: { kind: 'lz4', bytes: hostileLz4(r, pageSize), pageSize }, how: 'lz4' };
  }
  if (roll < 23) return makeMultifdCase(r);
  let bytes: Uint8Array;
  let how: string;
  if (roll < 44) {
    bytes = hostileStream(r);
    how = 'generated';
    if (r.chance(0.25)) {
      const m = mutate(r, { bytes, map: pickSeed(r, corpus).map }, pickSeed(r, corpus));
      bytes = m.bytes;
      how += `+${m.ops.join('+')}`;
    }
  } else if (roll < 47) {
    const s = pickSeed(r, corpus);
    bytes = s.bytes;
    how = `seed ${s.name}`;
  } else {
    const s = pickSeed(r, corpus);
    const m = mutate(r, s, pickSeed(r, corpus));
    bytes = m.bytes;
    how = `${s.name} ${m.ops.join('+')}`;
  }
  const opts = {
    ...(r.chance(0.25) ? { chunkSeed: r.u32() } : {}),
    ...(r.chance(0.2)
      ? {
          transcode: true,
          xbzrle: r.chance(0.3),
          ...(r.chance(0.2) ? { compress: r.pick(['zlib', 'lz4'] as const) } : {}),
          ...(r.chance(0.1)
            ? { blockChunk: r.pick([4096, 65536, 262144]), ...(r.chance(0.5) ? { chunkCompress: r.pick(['zlib', 'lz4'] as const) } : {}) }
            : {}),
          ...(extract && r.chance(0.05) ? { fileRam: true } : {}),
          ...(r.chance(0.1) ? { digest: true } : {}),
        }
      : {}),
    ...(extract && r.chance(0.03) ? { extract: true } : {}),
  };
  return { c: { kind: 'stream', bytes, opts }, how };
}

export function caseFor(seed: number, index: number, corpus: Corpus, extract = false): MadeCase {
  return makeCase(new Rng(caseSeed(seed, index)), corpus, extract);
}

/** What makes two findings the same bug: kind, target and the message without numbers. */
export function signature(f: Finding): string {
  const msg = f.message
    .replace(/0x[0-9a-f]+/gi, 'N')
    .replace(/\d+/g, 'N')
    .replace(/\b[A-Z][A-Z_]{3,}\b/g, 'CODE') // error codes (and ok) vary with what the mutation hit
    .replace(/\bok\b/g, 'CODE')
    .replace(/'[^']*'|"[^"]*"/g, 'S')
    .slice(0, 120);
  const frame =
    f.stack
      ?.split('\n')
      .find((l) => l.includes('/src/') || l.includes('/dist/'))
      ?.replace(/:\d+:\d+\)?$/, '')
      .trim() ?? '';
  return `${f.kind}|${f.target}|${msg}|${frame}`;
}

export interface Timed {
  findings: Finding[];
  outcome: string;
  ms: number;
}

export function timedRun(c: FuzzCase, extras: ExtraCodecs): Timed {
  const t0 = performance.now();
  let res;
  try {
    res = runCase(c, extras);
  } catch (e) {
    // A bug in an oracle or a sink outside the decoder: still a finding.
    res = { findings: [{ kind: 'escape' as const, target: 'harness', message: String(e), stack: (e as Error)?.stack }], outcome: 'escape' };
  }
  return { ...res, ms: performance.now() - t0 };
}

/** Replaces the bytes of a case (for shrinking). */
function withBytes(c: FuzzCase, bytes: Uint8Array): FuzzCase {
  return { ...c, bytes } as FuzzCase;
}

/**
 * Delta debugging over the case's bytes: drops ever smaller chunks while the
 * same finding (same signature, or still slow) reproduces.
 */
export function shrink(c: FuzzCase, sig: string, extras: ExtraCodecs, opts: { slowMs?: number; budgetMs?: number } = {}): FuzzCase {
  const deadline = performance.now() + (opts.budgetMs ?? 10_000);
  const holds = (cand: FuzzCase): boolean => {
    const t = timedRun(cand, extras);
    if (opts.slowMs !== undefined) return t.ms > opts.slowMs;
    return t.findings.some((f) => signature(f) === sig);
  };
  let best = c;
  // First the shortest failing prefix, by bisection (truncation is the commonest shape).
  let lo = 0;
  let hi = best.bytes.length;
  while (lo < hi && performance.now() < deadline) {
    const mid = (lo + hi) >>> 1;
    if (holds(withBytes(best, best.bytes.subarray(0, mid)))) hi = mid;
    else lo = mid + 1;
  }
  if (hi < best.bytes.length && holds(withBytes(best, best.bytes.subarray(0, hi)))) best = withBytes(best, best.bytes.slice(0, hi));
  let chunk = Math.max(1, best.bytes.length >>> 1);
  while (chunk >= 1 && performance.now() < deadline) {
    let progress = false;
    for (let at = 0; at < best.bytes.length && performance.now() < deadline; ) {
      const b = best.bytes;
      const cand = new Uint8Array(b.length - Math.min(chunk, b.length - at));
      cand.set(b.subarray(0, at), 0);
      cand.set(b.subarray(at + chunk), at);
      const next = withBytes(best, cand);
      if (holds(next)) {
        best = next;
        progress = true;
      } else at += chunk;
    }
    if (!progress) chunk >>>= 1;
  }
  return best;
}

export interface RegressionMeta {
  finding: Finding;
  seed?: number;
  index?: number;
  how?: string;
  /** The MigstreamError code this input is expected to give now, when known. */
  expectedCode?: string;
}

/** Writes `<dir>/<name>.bin` and `<name>.json`; returns the base name (or undefined if already there). */
export function saveRegression(dir: string, c: FuzzCase, meta: RegressionMeta): string | undefined {
  mkdirSync(dir, { recursive: true });
  const h = createHash('sha256').update(c.bytes).update(c.kind).digest('hex').slice(0, 10);
  const base = `${meta.finding.kind}-${meta.finding.target}-${h}`;
  if (existsSync(join(dir, `${base}.bin`))) return undefined;
  writeFileSync(join(dir, `${base}.bin`), c.bytes);
  const { bytes: _bytes, ...rest } = c as FuzzCase & { bytes: Uint8Array };
  const json = {
    case: rest,
    finding: { kind: meta.finding.kind, target: meta.finding.target, message: meta.finding.message.slice(0, 500) },
    ...(meta.expectedCode ? { expectedCode: meta.expectedCode } : {}),
    ...(meta.seed !== undefined ? { foundBy: { seed: meta.seed, index: meta.index, how: meta.how } } : {}),
  };
  writeFileSync(join(dir, `${base}.json`), `${JSON.stringify(json, null, 2)}\n`);
  return base;
}

export interface LoopOptions {
  seed: number;
  corpus: Corpus;
  extras?: ExtraCodecs;
  startIndex?: number;
  /** Stop after this many cases … */
  maxCases?: number;
  /** … or at this time (ms since epoch), whichever comes first. */
  deadline?: number;
  slowMs?: number;
  extract?: boolean;
  /** Shared progress: [index of the running case, cases done, running flag, loop ms]. */
  progress?: Int32Array;
  onFinding?: (f: { finding: Finding; c: FuzzCase; index: number; how: string; sig: string }) => void;
  /** Check the reference streams every this many cases. */
  referenceEvery?: number;
  shrinkBudgetMs?: number;
  /** Past the deadline, go on until each of these targets has had a case (bounded by maxCases). */
  coverTargets?: readonly string[];
  /** Spins forever at this case index: only to test the hang watchdog (`--test-hang-at`). */
  hangAt?: number;
}

export interface LoopStats {
  cases: number;
  ms: number;
  findings: number;
  /** Distinct signatures. */
  bugs: number;
  outcomes: Record<string, number>;
  kinds: Record<string, number>;
  /** Cases per target (see targetsOf): a target with none was never exercised. */
  targets: Record<string, number>;
  slowest: { index: number; ms: number; how: string };
  nextIndex: number;
}

function covered(targets: readonly string[] | undefined, stats: LoopStats): boolean {
  return !targets || targets.every((t) => (stats.targets[t] ?? 0) > 0);
}

/** Decodes each valid seed with a fresh decoder; events and RAM must match what they were at start. */
export function checkReferences(corpus: Corpus): Finding[] {
  const out: Finding[] = [];
  for (const ref of corpus.references) {
    let now: string;
    try {
      now = fingerprint(ref.seed.bytes);
    } catch (e) {
      now = `threw ${String(e)}`;
    }
    if (now !== ref.trace) out.push({ kind: 'reference', target: 'decoder', message: `reference ${ref.seed.name}: ${now}, expected ${ref.trace}` });
  }
  return out;
}

/** Fingerprints the seeds that decode cleanly, as the references for checkReferences. */
export function takeReferences(corpus: Corpus): void {
  corpus.references = [];
  for (const seed of corpus.seeds) {
    const t = timedRun({ kind: 'stream', bytes: seed.bytes, opts: { transcode: true, chunkSeed: 1 } }, NO_EXTRAS);
    if (t.outcome === 'ok' && t.findings.length === 0) corpus.references.push({ seed, trace: fingerprint(seed.bytes) });
  }
}

/**
 * Runs cases until the case budget or the deadline. Yields to the event loop
 * every 64 cases: node:zlib frees the native state of a failed inflateSync
 * only then (about 16 KB each), so a loop that never yields grows without
 * bound on zlib cases. (The decoder stops at its first failed page, so it
 * meets this once per stream, not per page.)
 */
export async function runLoop(o: LoopOptions): Promise<LoopStats> {
  const extras = o.extras ?? NO_EXTRAS;
  const slowMs = o.slowMs ?? 100;
  const seen = new Set<string>();
  const stats: LoopStats = {
    cases: 0,
    ms: 0,
    findings: 0,
    bugs: 0,
    outcomes: {},
    kinds: {},
    targets: {},
    slowest: { index: -1, ms: 0, how: '' },
    nextIndex: o.startIndex ?? 0,
  };
  const t0 = performance.now();
  const report = (finding: Finding, c: FuzzCase, index: number, how: string): void => {
    stats.findings++;
    stats.kinds[finding.kind] = (stats.kinds[finding.kind] ?? 0) + 1;
    const sig = signature(finding);
    if (seen.has(sig)) return;
    seen.add(sig);
    stats.bugs++;
    o.onFinding?.({ finding, c, index, how, sig });
  };
  let index = o.startIndex ?? 0;
  for (;;) {
    if (o.maxCases !== undefined && stats.cases >= o.maxCases) break;
    if ((stats.cases & 63) === 0) {
      if (o.deadline !== undefined && Date.now() >= o.deadline && covered(o.coverTargets, stats)) break;
      await new Promise((resolve) => setImmediate(resolve));
    }
    if (o.progress) {
      Atomics.store(o.progress, 0, index);
      Atomics.store(o.progress, 2, 1);
    }
    let made: MadeCase;
    try {
      made = caseFor(o.seed, index, o.corpus, o.extract);
    } catch (e) {
      // A bug in the case builder leaves part of the input space untested: a finding, not a note.
      report(
        { kind: 'harness', target: 'case-builder', message: `could not build case ${index}: ${String(e)}`, stack: (e as Error)?.stack },
        { kind: 'stream', bytes: new Uint8Array(0), opts: {} },
        index,
        'case builder',
      );
      index++;
      stats.cases++;
      continue;
    }
    if (index === o.hangAt) for (;;); // eslint-disable-line no-empty
    let t = timedRun(made.c, extras);
    if (o.progress) Atomics.store(o.progress, 2, 0);
    // The limit grows with the input: slowMs, plus slowMs per MiB (a case runs up to four decodes).
    const limit = slowMs * (1 + made.c.bytes.length / 2 ** 20);
    if (t.ms > limit) {
      // Confirm on a quiet moment: the machine is shared, a GC pause is not a finding.
      const again = Math.min(timedRun(made.c, extras).ms, timedRun(made.c, extras).ms);
      if (again > limit) {
        t = {
          ...t,
          findings: [
            ...t.findings,
            { kind: 'slow', target: made.c.kind, message: `case of ${made.c.bytes.length} bytes took ${again.toFixed(0)} ms (limit ${limit.toFixed(0)} ms)` },
          ],
        };
      }
    }
    if (t.ms > stats.slowest.ms) stats.slowest = { index, ms: t.ms, how: made.how };
    stats.outcomes[t.outcome] = (stats.outcomes[t.outcome] ?? 0) + 1;
    for (const target of targetsOf(made.c)) stats.targets[target] = (stats.targets[target] ?? 0) + 1;
    for (const f of t.findings) report(f, made.c, index, made.how);
    stats.cases++;
    index++;
    if (o.progress) {
      Atomics.store(o.progress, 1, stats.cases);
      Atomics.store(o.progress, 3, Math.round(performance.now() - t0));
    }
    if (o.referenceEvery && stats.cases % o.referenceEvery === 0) {
      for (const f of checkReferences(o.corpus)) report(f, made.c, index - 1, `after ${made.how}`);
    }
  }
  for (const f of checkReferences(o.corpus)) report(f, { kind: 'stream', bytes: new Uint8Array(0), opts: {} }, index, 'end of run');
  stats.ms = performance.now() - t0;
  stats.nextIndex = index;
  return stats;
}
