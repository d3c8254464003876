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
import { runIncoming } from '../fixtures/qemu/lib.mjs';
import { applyDelta, type StreamDelta } from '../src/fuzz/qemu-delta.js';
import { judge, migstreamLoad } from '../src/fuzz/qemu-diff.js';
import { sameBytes } from './support/build.js';
import { fixtureFile } from './support/fixtures.js';
import { qemuGate } from './support/qemu.js';

const DIR = join(import.meta.dirname, 'regressions', 'differential');

interface Recipe {
  note: string;
  verdict: 'both-load' | 'both-reject';
  /** both-reject: migstream's error code. */
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
    if (r.verdict === 'both-reject') {
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
    const streamPath = join(work, `${name}.bin`);
    const bytes = bytesOf(r);
    writeFileSync(streamPath, bytes);
    let loaded: Awaited<ReturnType<typeof runIncoming>> | undefined;
    let error = '';
    try {
      loaded = await runIncoming({ config: r.delta.fixture, streamPath, workDir: join(work, name), timeoutMs: 60_000 });
    } catch (e) {
      error = (e as Error).message;
    }
    const q = loaded
      ? {
          status: 'loaded' as const,
          ms: 0,
          stderr: loaded.stderr,
          ram: new Uint8Array(readFileSync(loaded.ramPath)),
          disks: Object.fromEntries(Object.entries(loaded.diskPaths).map(([d, p]) => [d, new Uint8Array(readFileSync(p))])),
        }
      : { status: 'rejected' as const, ms: 0, stderr: error };
    const verdict = judge(q, migstreamLoad(bytes), {}).verdict;
    expect(verdict, error).toBe(r.verdict === 'both-load' ? 'both-load-equal' : 'both-reject');
  });
});
