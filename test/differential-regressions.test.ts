/**
 * Disagreements the differential fuzzer found (or that its review found)
 * between migstream and QEMU 7.2, kept as recipes in
 * test/regressions/differential/ (a delta against a fixture stream). The
 * verdict that is ours is replayed without QEMU; where QEMU is present it
 * loads the same bytes and the two are judged as the fuzzer judges them.
 * The vmdesc-* recipes have their own test (test/vmdesc-trailer.test.ts).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { applyDelta, type StreamDelta } from '../src/fuzz/qemu-delta.js';
import { judge, migstreamLoad } from '../src/fuzz/qemu-diff.js';
import { Destination, loadQemuLib } from '../src/fuzz/qemu-dest.js';
import { sameBytes } from './support/build.js';
import { fixtureFile } from './support/fixtures.js';
import { qemuGate } from './support/qemu.js';

const DIR = join(import.meta.dirname, 'regressions', 'differential');

interface Recipe {
  note: string;
  /** qemu-crash: a QEMU finding (docs/qemu-findings.md) on a stream migstream rejects. */
  verdict: 'both-load' | 'both-reject' | 'qemu-crash';
  /** both-reject, qemu-crash: migstream's error code. */
  code?: string;
  delta: StreamDelta;
}

const recipes = readdirSync(DIR)
  .filter((f) => f.endsWith('.json') && !f.startsWith('vmdesc-'))
  .sort()
  .map((f) => [f.replace(/\.json$/, ''), JSON.parse(readFileSync(join(DIR, f), 'utf8')) as Recipe] as const);

const bytesOf = (r: Recipe) => applyDelta(fixtureFile(r.delta.fixture, 'stream.bin'), r.delta);
const work = mkdtempSync(join(tmpdir(), 'migstream-diffreg-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('differential regressions, migstream side', () => {
  it('has them', () => {
    expect(recipes.length).toBeGreaterThanOrEqual(2);
  });

  it.each(recipes)('%s', (_name, r) => {
    const m = migstreamLoad(bytesOf(r));
    if (r.verdict !== 'both-load') {
      expect(m).toMatchObject({ status: 'rejected', code: r.code });
      return;
    }
    expect(m.message).toBeUndefined();
    expect(m.status).toBe('loaded');
    expect(m.warnings).toEqual([]);
    // these damage no page: the RAM is the source's
    expect(sameBytes(m.ram!, fixtureFile(r.delta.fixture, 'ram.bin'))).toBe(true);
  });
});

const gate = qemuGate();
describe.skipIf(!gate.run)('differential regressions, against real QEMU 7.2', () => {
  it.each(recipes)('%s', async (name, r) => {
    const lib = await loadQemuLib();
    const streamPath = join(work, `${name}.bin`);
    const bytes = bytesOf(r);
    writeFileSync(streamPath, bytes);
    // the fuzzer's own destination and verdict: a crash is told apart from a rejection
    const dest = await Destination.start(lib, lib.getConfig(r.delta.fixture), join(work, name));
    const q = await dest.load(lib, streamPath, 60_000).finally(() => dest.dispose());
    const verdict = judge(q, migstreamLoad(bytes), {}).verdict;
    if (r.verdict === 'qemu-crash') {
      // QEMU's bug: it must not load the stream; a fixed QEMU may reject it instead of crashing
      expect(['qemu-crash', 'both-reject'], q.stderr).toContain(verdict);
      return;
    }
    expect(verdict, q.stderr).toBe(r.verdict === 'both-load' ? 'both-load-equal' : 'both-reject');
  });
});
