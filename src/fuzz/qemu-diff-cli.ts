/**
 * `npm run fuzz:qemu -- [--cases N] [--seconds S] [--seed S] [--start I] [--fixtures a,b] [--timeout-ms MS] [--out DIR] [--json]`
 * `npm run fuzz:qemu -- --report DIR [--json]` counts a run's results again with today's classification.
 * (also `npm run fuzz -- --against-qemu …`): differential fuzzing against a
 * real QEMU 7.2 destination (docs/fuzzing.md). Exit 1 when a disagreement is
 * not one docs/fuzzing.md documents.
 */
import '../node/install.js'; // migstream as the CLI runs it: node:zlib and lz4-wasm, not the portable codecs
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runDiff, type DiffSummary } from './qemu-diff-run.js';
import { reportRun } from './qemu-diff-report.js';

export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args: args.filter((a) => a !== '--against-qemu'),
    options: {
      cases: { type: 'string', default: '200' },
      seconds: { type: 'string' },
      seed: { type: 'string', default: '1' },
      start: { type: 'string', default: '0' },
      fixtures: { type: 'string' },
      'timeout-ms': { type: 'string', default: '15000' },
      out: { type: 'string' },
      json: { type: 'boolean', default: false },
      report: { type: 'string' },
    },
  });
  if (values.report !== undefined) {
    // count a finished (or running) run again from its results directory
    const r = reportRun(values.report);
    printSummary(r);
    if (values.json) await new Promise((done) => process.stdout.write(`${JSON.stringify(r, null, 2)}\n`, done));
    return r.undocumented.length ? 1 : 0;
  }
  const seed = Number(values.seed) >>> 0;
  const cases = Number(values.cases);
  const out = values.out ?? join('.cache', 'qemu-diff', `seed-${seed}`);
  const tty = process.stderr.isTTY === true;
  let last = 0;
  const progress = (s: DiffSummary): void => {
    const now = Date.now();
    if (now - last < (tty ? 500 : 30_000) && s.cases < cases) return;
    last = now;
    const width = 30;
    const filled = Math.round((s.cases / cases) * width);
    const rate = s.cases / Math.max(s.wallSeconds, 1e-3);
    const eta = (cases - s.cases) / Math.max(rate, 1e-9);
    const line = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${s.cases}/${cases} cases, ${rate.toFixed(2)}/s, eta ${Math.round(eta / 60)} min | ${short(s)}`;
    process.stderr.write(tty ? `\r${line.slice(0, (process.stderr.columns ?? 200) - 1)}` : `${line}\n`);
  };
  process.stderr.write(`migstream differential fuzzing against QEMU 7.2: seed ${seed}, ${cases} cases from ${values.start}, results in ${out}\n`);
  const s = await runDiff({
    seed,
    start: Number(values.start),
    cases,
    seconds: values.seconds !== undefined ? Number(values.seconds) : undefined,
    fixtures: values.fixtures?.split(','),
    timeoutMs: Number(values['timeout-ms']),
    out,
    onProgress: progress,
  });
  if (tty) process.stderr.write('\n');
  printSummary(s);
  if (values.json) await new Promise((done) => process.stdout.write(`${JSON.stringify(s, null, 2)}\n`, done));
  return s.undocumented.length ? 1 : 0;
}

function printSummary(s: DiffSummary & { bothRejectSameWords?: number }): void {
  process.stderr.write(`${s.cases} cases in ${s.wallSeconds.toFixed(0)} s (QEMU ${s.meanQemuMs} ms, migstream ${s.meanMigstreamMs} ms per case on average)\n`);
  for (const [v, n] of Object.entries(s.verdicts)) process.stderr.write(`  ${v.padEnd(18)} ${n}\n`);
  for (const [k, n] of Object.entries(s.qemuRejects).sort((a, b) => b[1] - a[1])) process.stderr.write(`    QEMU alone rejects, ${k}: ${n}\n`);
  for (const [k, n] of Object.entries(s.warnings)) process.stderr.write(`    migstream loaded with a ${k} warning: ${n}\n`);
  for (const r of s.undocumented) {
    process.stderr.write(
      `UNDOCUMENTED ${r.verdict} case ${r.index} (${r.fixture}, ${r.how}): QEMU ${r.qemuStatus} ${r.qemu?.message ?? ''} | migstream ${r.migstream.status} ${r.migstream.message ?? ''}${r.differ ? ` | ${r.differ}` : ''}\n`,
    );
  }
  if (s.bothRejectSameWords !== undefined)
    process.stderr.write(`  both rejected with QEMU's words in migstream's message: ${s.bothRejectSameWords} of ${s.verdicts['both-reject']}\n`);
}

function short(s: DiffSummary): string {
  const v = s.verdicts;
  return `equal ${v['both-load-equal']}, both reject ${v['both-reject']}, QEMU alone ${v['qemu-rejects']}, migstream alone ${v['migstream-rejects']}, RAM differs ${v['both-load-differ']}, crash ${v['qemu-crash']}, hang ${v['qemu-hang']}`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (e: unknown) => {
      process.stderr.write(`migstream fuzz:qemu: ${(e as Error)?.stack ?? String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
