/**
 * CI's fuzz smoke: the harness of `npm run fuzz` for a fixed seed and a time
 * budget (MIGSTREAM_FUZZ_SECONDS; default 60 s under CI=true, 5 s otherwise).
 * It asserts the harness has its teeth (every page codec loaded, every target
 * reached, no case that failed to build) and what the fuzzer checks — nothing but MigstreamError escapes, no
 * chunking, transcode, extract or page-decoder disagreement, no slow case,
 * and fresh decoders still decode the reference streams exactly — not how
 * fast it ran. A failure names the case: reproduce it with
 * `npm run fuzz -- --seed SEED --start INDEX --cases 1`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { buildCorpus } from '../src/fuzz/corpus.js';
import { prepareCorpus, runLoop, takeReferences } from '../src/fuzz/engine.js';
import { ALL_TARGETS, EXPECTED_CODECS, loadExtraCodecs, setScratchDir, type Finding } from '../src/fuzz/targets.js';

const SEED = 0x6d696773;
const seconds = Number(process.env.MIGSTREAM_FUZZ_SECONDS ?? (process.env.CI === 'true' ? 60 : 5));
const scratch = mkdtempSync(join(tmpdir(), 'migstream-fuzz-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

it(
  `fuzzes the decoder, transcode, extract sinks and page decoders for ${seconds} s (seed ${SEED})`,
  async () => {
    const built = buildCorpus();
    const corpus = prepareCorpus(built.seeds);
    takeReferences(corpus);
    // Every seed is a complete stream the decoder reads cleanly: the references of the run.
    expect(corpus.references.map((r) => r.seed.name)).toEqual(corpus.seeds.map((s) => s.name));
    setScratchDir(scratch);
    // Every differential partner is there: a missing codec would leave its target checking nothing.
    const extras = await loadExtraCodecs();
    expect(extras.zlib.map((z) => z.name)).toEqual(EXPECTED_CODECS.zlib);
    expect(extras.lz4.map((z) => z.name)).toEqual(EXPECTED_CODECS.lz4);
    const found: { finding: Finding; index: number; how: string }[] = [];
    const stats = await runLoop({
      seed: SEED,
      corpus,
      extras,
      deadline: Date.now() + seconds * 1000,
      coverTargets: ALL_TARGETS, // past the deadline until each target had a case (rare ones are ~1%)
      maxCases: 50_000,
      slowMs: 250, // CI machines are shared: the long run uses 100 ms
      extract: true,
      referenceEvery: 2000,
      onFinding: (f) => found.push(f),
    });
    const report = found.map((f) => `case ${f.index} (${f.how}): ${f.finding.kind} in ${f.finding.target}: ${f.finding.message}`);
    expect(report, `seed ${SEED}`).toEqual([]);
    expect(stats.cases).toBeGreaterThan(seconds * 20);
    // Each target produced cases, and no case failed to build (that would be a 'harness' finding above).
    for (const t of ALL_TARGETS) expect(stats.targets[t] ?? 0, `cases for ${t}`).toBeGreaterThan(0);
    expect(stats.kinds.harness ?? 0).toBe(0);
    // The mix reaches both clean decodes and many kinds of typed errors.
    expect(stats.outcomes.ok).toBeGreaterThan(0);
    expect(Object.keys(stats.outcomes).length).toBeGreaterThan(8);
  },
  (seconds + 120) * 1000,
);
