/**
 * CI's fuzz smoke: the harness of `npm run fuzz` for a fixed seed and a time
 * budget (MIGSTREAM_FUZZ_SECONDS; default 60 s under CI=true, 5 s otherwise).
 * It asserts what the fuzzer checks — nothing but MigstreamError escapes, no
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
import { loadExtraCodecs, setScratchDir, type Finding } from '../src/fuzz/targets.js';

const SEED = 0x6d696773;
const seconds = Number(process.env.MIGSTREAM_FUZZ_SECONDS ?? (process.env.CI === 'true' ? 60 : 5));
const scratch = mkdtempSync(join(tmpdir(), 'migstream-fuzz-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

it(`fuzzes the decoder, transcode, extract sinks and page decoders for ${seconds} s (seed ${SEED})`, async () => {
  const built = buildCorpus();
  const corpus = prepareCorpus(built.seeds);
  takeReferences(corpus);
  // Every seed is a complete stream the decoder reads cleanly: the references of the run.
  expect(corpus.references.map((r) => r.seed.name)).toEqual(corpus.seeds.map((s) => s.name));
  setScratchDir(scratch);
  const found: { finding: Finding; index: number; how: string }[] = [];
  const stats = await runLoop({
    seed: SEED,
    corpus,
    extras: await loadExtraCodecs(),
    deadline: Date.now() + seconds * 1000,
    slowMs: 250, // CI machines are shared: the long run uses 100 ms
    extract: true,
    referenceEvery: 2000,
    onFinding: (f) => found.push(f),
  });
  const report = found.map((f) => `case ${f.index} (${f.how}): ${f.finding.kind} in ${f.finding.target}: ${f.finding.message}`);
  expect(report, `seed ${SEED}`).toEqual([]);
  expect(stats.cases).toBeGreaterThan(seconds * 20);
  // The mix reaches both clean decodes and many kinds of typed errors.
  expect(stats.outcomes.ok).toBeGreaterThan(0);
  expect(Object.keys(stats.outcomes).length).toBeGreaterThan(8);
}, (seconds + 120) * 1000);
