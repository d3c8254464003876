/**
 * Re-reads a differential run's results (results.jsonl, and the full QEMU
 * stderr of each disagreement in findings/) and counts it again with the
 * current classification: the numbers in docs/fuzzing.md come from here.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { classifyQemu } from './qemu-diff.js';
import { count, documented, newSummary, type CaseRecord, type DiffSummary } from './qemu-diff-run.js';

export interface DiffReport extends DiffSummary {
  /** Both rejected and migstream's message carries QEMU's first error line (numbers aside). */
  bothRejectSameWords: number;
}

export function reportRun(dir: string): DiffReport {
  const lines = readFileSync(join(dir, 'results.jsonl'), 'utf8').split('\n').filter(Boolean);
  const records = new Map<number, CaseRecord>();
  for (const l of lines) {
    const r = JSON.parse(l) as CaseRecord;
    records.set(r.index, r); // a resumed run may repeat an index: the last one counts
  }
  const sorted = [...records.values()].sort((a, b) => a.index - b.index);
  const s: DiffReport = { ...newSummary(0, sorted[0]?.index ?? 0), bothRejectSameWords: 0 };
  let qemuMs = 0;
  let migMs = 0;
  for (const r of sorted) {
    const f = join(dir, 'findings', `${r.verdict}-${r.fixture}-${r.index}.json`);
    if (r.qemu && existsSync(f)) r.qemu = classifyQemu((JSON.parse(readFileSync(f, 'utf8')) as { qemuStderr: string }).qemuStderr);
    r.documented = documented(r);
    count(s, r);
    if (r.verdict === 'both-reject' && r.qemu && sameWords(r.qemu.message, r.migstream.message ?? '')) s.bothRejectSameWords++;
    qemuMs += r.qemuMs;
    migMs += r.migstream.ms;
  }
  s.meanQemuMs = Math.round(qemuMs / Math.max(1, s.cases));
  s.meanMigstreamMs = Math.round(migMs / Math.max(1, s.cases));
  return s;
}

function sameWords(qemu: string, mine: string): boolean {
  const norm = (x: string) =>
    x
      .replace(/0x/g, '')
      .replace(/\b[0-9a-f]*\d[0-9a-f]*\b/gi, 'N')
      .toLowerCase();
  const key = norm(qemu).split(':')[0]!.trim();
  return key.length > 0 && norm(mine).includes(key);
}
