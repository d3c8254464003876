/**
 * The same cases driven by fast-check instead of the plain seeded loop, to
 * choose the engine by measurement (`npm run fuzz -- --engine fast-check`).
 * Every random draw of the case builder goes through fast-check's generator,
 * so fast-check owns the randomness (and could shrink the draws).
 */
import type { Corpus } from './engine.js';
import { makeCase, signature, timedRun } from './engine.js';
import { Rng } from './rng.js';
import type { ExtraCodecs, Finding } from './targets.js';

export async function runFastCheck(o: {
  seed: number;
  corpus: Corpus;
  extras: ExtraCodecs;
  seconds: number;
  maxCases?: number;
  mode: 'gen' | 'seed';
}): Promise<{ cases: number; ms: number; bugs: Set<string>; findings: Finding[] }> {
  const fc = await import('fast-check');
  let cases = 0;
  const bugs = new Set<string>();
  const findings: Finding[] = [];
  const check = (r: Rng): boolean => {
    const made = makeCase(r, o.corpus);
    const t = timedRun(made.c, o.extras);
    cases++;
    for (const f of t.findings) {
      if (!bugs.has(signature(f))) findings.push(f);
      bugs.add(signature(f));
    }
    return true; // collect findings ourselves and keep going, like the loop
  };
  const params = {
    seed: o.seed,
    numRuns: o.maxCases ?? 1e9,
    interruptAfterTimeLimit: o.seconds * 1000,
    markInterruptAsFailure: false,
  };
  // Async properties that yield to the event loop every 64 runs, like the loop (node:zlib frees failed inflates then).
  const pause = async (): Promise<void> => {
    if ((cases & 63) === 0) await new Promise((resolve) => setImmediate(resolve));
  };
  const t0 = performance.now();
  if (o.mode === 'gen') {
    await fc.assert(
      fc.asyncProperty(fc.gen(), async (g) => {
        class FcRng extends Rng {
          override u32(): number {
            return g(fc.integer, { min: 0, max: 0xffffffff }) >>> 0;
          }
        }
        await pause();
        return check(new FcRng(0));
      }),
      params,
    );
  } else {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 0x7fffffff }), async (s) => {
        await pause();
        return check(new Rng(s));
      }),
      params,
    );
  }
  return { cases, ms: performance.now() - t0, bugs, findings };
}
