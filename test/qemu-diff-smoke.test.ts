/**
 * CI's differential smoke against real QEMU 7.2 (docs/fuzzing.md): a fixed
 * seed, about a minute of cases over every fixture, each loaded by a QEMU
 * destination and by migstream. It fails on any disagreement
 * docs/fuzzing.md does not document (QEMU rejecting device state migstream
 * passes through is documented; migstream alone rejecting, different RAM, a
 * QEMU crash or hang are not).
 */
import { describe, expect, it } from 'vitest';
import { runDiff } from '../src/fuzz/qemu-diff-run.js';
import { fixtureNames } from './support/fixtures.js';
import { qemuGate } from './support/qemu.js';

const gate = qemuGate();
const SEED = 20260418;
/** MIGSTREAM_DIFF_CASES shortens it for a local look; CI runs the default. */
const CASES = Number(process.env.MIGSTREAM_DIFF_CASES ?? 60);

describe.skipIf(!gate.run)('differential smoke against real QEMU 7.2', () => {
  it(`seed ${SEED}: ${CASES} cases, no undocumented disagreement`, { timeout: 240_000 }, async () => {
    const s = await runDiff({ seed: SEED, cases: CASES, seconds: 150 });
    const report = s.undocumented.map(
      (r) =>
        `${r.verdict} case ${r.index} (${r.fixture}, ${r.how}): QEMU ${r.qemuStatus} ${r.qemu?.message ?? ''} | migstream ${r.migstream.status} ${r.migstream.message ?? ''} ${r.differ ?? ''}`,
    );
    expect(report).toEqual([]);
    // it ran: the time bound may cut it short on a slow machine, not to nothing
    expect(s.cases).toBeGreaterThanOrEqual(Math.min(CASES, 20));
    if (CASES >= 40) {
      expect(s.verdicts['both-load-equal']).toBeGreaterThan(0);
      expect(s.verdicts['both-reject']).toBeGreaterThan(0);
      expect(Object.keys(s.perFixture).sort()).toEqual(fixtureNames());
    }
  });
});
