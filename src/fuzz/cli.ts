/**
 * `npm run fuzz -- --seconds N [--seed S] [--cases N] [--engine loop|fast-check|fast-check-seed]`
 *
 * Runs the fuzz loop in a worker thread watched by this one: a case that runs
 * longer than --hang-ms, or a process that grows past --rss-mb, is a finding
 * (the worker is stopped and restarted after that case). Findings are
 * minimised and written to test/regressions/ (see docs/fuzzing.md).
 *
 * `npm run fuzz -- --replay test/regressions/NAME.bin` runs one saved case.
 * `--test-hang-at N` makes case N spin forever, to see the watchdog work.
 * `npm run fuzz -- --against-qemu [--cases N] …` runs qemu-diff-cli.ts instead.
 */
import '../node/install.js'; // migstream as the CLI runs it: node:zlib and lz4-wasm, not the portable codecs
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { buildCorpus } from './corpus.js';
import { caseFor, prepareCorpus, saveRegression, type LoopStats } from './engine.js';
import { ALL_TARGETS, loadExtraCodecs, runCase, setScratchDir, type Finding, type FuzzCase } from './targets.js';
import type { WorkerInput } from './worker.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

if (process.argv.includes('--against-qemu')) {
  // differential fuzzing against real QEMU 7.2 (the same as `npm run fuzz:qemu`)
  const { main } = await import('./qemu-diff-cli.js');
  process.exit(await main(process.argv.slice(2)));
}

const FLAGS = {
  seconds: { type: 'string', default: '60' },
  cases: { type: 'string' },
  seed: { type: 'string' },
  start: { type: 'string', default: '0' },
  engine: { type: 'string', default: 'loop' },
  out: { type: 'string', default: join(ROOT, 'test', 'regressions') },
  'no-save': { type: 'boolean', default: false },
  'slow-ms': { type: 'string', default: '100' },
  'hang-ms': { type: 'string', default: '10000' },
  'rss-mb': { type: 'string', default: '4096' },
  'shrink-ms': { type: 'string', default: '20000' },
  fixtures: { type: 'string' },
  synthetic: { type: 'boolean', default: false },
  'no-extract': { type: 'boolean', default: false },
  replay: { type: 'string' },
  json: { type: 'boolean', default: false },
  'test-hang-at': { type: 'string' },
} as const;

const USAGE = `usage: npm run fuzz -- [--seconds N] [--cases N] [--seed S] [--start N] [--engine loop|fast-check|fast-check-seed]
         [--out DIR] [--no-save] [--slow-ms N] [--hang-ms N] [--rss-mb N] [--shrink-ms N] [--fixtures DIR] [--synthetic]
         [--no-extract] [--json] [--test-hang-at N]
       npm run fuzz -- --replay FILE
       npm run fuzz -- --against-qemu [--cases N] ...
(docs/fuzzing.md)`;

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  console.log(USAGE);
  process.exit(0);
}

function parseFlags() {
  try {
    return parseArgs({ options: FLAGS }).values;
  } catch (e) {
    process.stderr.write(`migstream fuzz: ${(e as Error).message}\n${USAGE}\n`);
    process.exit(2);
  }
}
const values = parseFlags();

const log = (s: string): void => void process.stderr.write(`${s}\n`);

const scratchDir = values['no-extract'] ? undefined : existsSync('/dev/shm') ? `/dev/shm/migstream-fuzz` : join(ROOT, '.cache', 'fuzz-scratch');

if (values.replay) {
  setScratchDir(scratchDir);
  const bin = values.replay;
  const meta = JSON.parse(readFileSync(bin.replace(/\.bin$/, '.json'), 'utf8')) as { case: Omit<FuzzCase, 'bytes'> };
  const c = { ...meta.case, bytes: new Uint8Array(readFileSync(bin)) } as FuzzCase;
  const t0 = performance.now();
  const res = runCase(c, await loadExtraCodecs());
  log(`${bin}: ${res.outcome} in ${(performance.now() - t0).toFixed(1)} ms, ${res.findings.length} findings`);
  for (const f of res.findings) log(`  ${f.kind} ${f.target}: ${f.message}${f.stack ? `\n${f.stack}` : ''}`);
  process.exit(res.findings.length ? 1 : 0);
}

const seed = values.seed !== undefined ? Number(values.seed) >>> 0 : (Date.now() ^ (process.pid << 16)) >>> 0;
const seconds = Number(values.seconds);
const maxCases = values.cases !== undefined ? Number(values.cases) : undefined;
const hangMs = Number(values['hang-ms']);
const rssCap = Number(values['rss-mb']) * 2 ** 20;
const engine = values.engine as WorkerInput['engine'];
const started = Date.now();
const deadline = started + seconds * 1000;

log(`migstream fuzz: engine ${engine}, seed ${seed}, ${maxCases !== undefined ? `${maxCases} cases or ` : ''}${seconds} s`);

const total: LoopStats = { cases: 0, ms: 0, findings: 0, bugs: 0, outcomes: {}, kinds: {}, targets: {}, slowest: { index: -1, ms: 0, how: '' }, nextIndex: 0 };
const saved: string[] = [];
let peakRss = 0;
let casesBefore = 0; // cases finished by earlier workers of this run
let lastProgress = Date.now();
const sigs = new Set<string>();
let corpusForMain: ReturnType<typeof prepareCorpus> | undefined;

function record(finding: Finding, c: FuzzCase | undefined, index: number, how: string, sig: string): void {
  log(`FINDING ${finding.kind} in ${finding.target} (case ${index}, ${how}): ${finding.message.slice(0, 300)}`);
  if (finding.stack) log(finding.stack.split('\n').slice(0, 6).join('\n'));
  if (sig && sigs.has(sig)) return;
  sigs.add(sig);
  total.bugs++;
  if (!c || values['no-save']) return;
  const name = saveRegression(values.out!, c, { finding, seed, index, how });
  if (name) {
    saved.push(name);
    log(`  saved ${join(values.out!, name)}.bin (${c.bytes.length} bytes)`);
  }
}

/** A case the worker never finished: rebuilt here from (seed, index). */
function lostCase(index: number, kind: 'hang' | 'memory', message: string): void {
  corpusForMain ??= prepareCorpus(buildCorpus({ fixtureDir: values.fixtures, syntheticOnly: values.synthetic }).seeds);
  const made = caseFor(seed, index, corpusForMain, scratchDir !== undefined);
  total.findings++;
  total.kinds[kind] = (total.kinds[kind] ?? 0) + 1;
  record({ kind, target: made.c.kind, message }, made.c, index, made.how, `${kind}|${made.how.split(' ')[0]}`);
}

async function runWorker(startIndex: number, casesLeft: number | undefined): Promise<{ next: number; done: boolean }> {
  const progress = new SharedArrayBuffer(16);
  const p = new Int32Array(progress);
  const input: WorkerInput = {
    seed,
    startIndex,
    deadline,
    maxCases: casesLeft,
    slowMs: Number(values['slow-ms']),
    fixtureDir: values.fixtures,
    synthetic: values.synthetic!,
    scratchDir,
    shrinkMs: Number(values['shrink-ms']),
    engine,
    progress,
    hangAt: values['test-hang-at'] !== undefined ? Number(values['test-hang-at']) : undefined,
  };
  const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: input, resourceLimits: { maxOldGenerationSizeMb: 4096 } });
  return new Promise((resolveRun) => {
    let lastIndex = -1;
    let since = Date.now();
    let finished = false;
    const stop = (kind: 'hang' | 'memory', message: string): void => {
      if (finished) return;
      finished = true;
      clearInterval(timer);
      const index = Atomics.load(p, 0);
      const done = Atomics.load(p, 1);
      void worker.terminate().then(() => {
        total.cases += done + 1;
        total.ms += Atomics.load(p, 3);
        lostCase(index, kind, message);
        resolveRun({ next: index + 1, done: false });
      });
    };
    const timer = setInterval(() => {
      const running = Atomics.load(p, 2) === 1;
      const index = Atomics.load(p, 0);
      if (!running || index !== lastIndex) {
        lastIndex = index;
        since = Date.now();
      } else if (Date.now() - since > hangMs) stop('hang', `case ${index} ran longer than ${hangMs} ms`);
      const rss = process.memoryUsage.rss();
      peakRss = Math.max(peakRss, rss);
      if (rss > rssCap) stop('memory', `process grew to ${(rss / 2 ** 20).toFixed(0)} MiB during case ${index}`);
      if (Date.now() - lastProgress >= 60_000) {
        lastProgress = Date.now();
        const done = casesBefore + Atomics.load(p, 1);
        log(`… ${done} cases after ${((Date.now() - started) / 1000).toFixed(0)} s, ${total.bugs} distinct findings, RSS ${(rss / 2 ** 20).toFixed(0)} MiB`);
      }
    }, 250);
    worker.on('message', (m: { type: string; [k: string]: unknown }) => {
      if (m.type === 'ready') {
        if (startIndex === 0 || !values.json) {
          log(
            `corpus: ${(m.seeds as string[]).length} seeds from fixtures [${(m.fixtures as string[]).join(', ')}] + synthetic; ${m.references} references; extra codecs [${(m.codecs as string[]).join(', ')}]; setup ${(m.setupMs as number).toFixed(0)} ms`,
          );
        }
      } else if (m.type === 'finding') {
        record(m.finding as Finding, m.c as FuzzCase | undefined, m.index as number, m.how as string, m.sig as string);
      } else if (m.type === 'done') {
        finished = true;
        clearInterval(timer);
        const s = m.stats as LoopStats;
        total.cases += s.cases;
        total.ms += s.ms;
        total.findings += s.findings;
        for (const [k, v] of Object.entries(s.outcomes)) total.outcomes[k] = (total.outcomes[k] ?? 0) + v;
        for (const [k, v] of Object.entries(s.kinds)) total.kinds[k] = (total.kinds[k] ?? 0) + v;
        for (const [k, v] of Object.entries(s.targets)) total.targets[k] = (total.targets[k] ?? 0) + v;
        if (s.slowest.ms > total.slowest.ms) total.slowest = s.slowest;
        void worker.terminate().then(() => resolveRun({ next: s.nextIndex, done: true }));
      }
    });
    worker.on('error', (e) => {
      if (finished) return;
      const index = Atomics.load(p, 0);
      finished = true;
      clearInterval(timer);
      total.cases += Atomics.load(p, 1) + 1;
      total.ms += Atomics.load(p, 3);
      lostCase(index, 'memory', `worker died during case ${index}: ${String(e)}`);
      resolveRun({ next: index + 1, done: false });
    });
  });
}

let next = Number(values.start);
for (;;) {
  const left = maxCases !== undefined ? maxCases - total.cases : undefined;
  if ((left !== undefined && left <= 0) || Date.now() >= deadline) break;
  const r = await runWorker(next, left);
  casesBefore = total.cases;
  next = r.next;
  if (r.done) break;
}

const wall = (Date.now() - started) / 1000;
const rate = total.cases / Math.max(total.ms / 1000, 1e-9);
const summary = {
  engine,
  seed,
  startIndex: Number(values.start),
  nextIndex: next,
  cases: total.cases,
  wallSeconds: Number(wall.toFixed(1)),
  loopSeconds: Number((total.ms / 1000).toFixed(1)),
  casesPerSecond: Math.round(rate),
  findings: total.findings,
  distinctFindings: total.bugs,
  findingKinds: total.kinds,
  outcomes: total.outcomes,
  targets: total.targets,
  slowest: { ...total.slowest, ms: Number(total.slowest.ms.toFixed(1)) },
  peakRssMiB: Math.round(peakRss / 2 ** 20),
  saved,
};
log(
  `${summary.cases} cases in ${summary.loopSeconds} s (${summary.wallSeconds} s wall): ${summary.casesPerSecond} cases/s; ${summary.findings} findings (${summary.distinctFindings} distinct)`,
);
log(
  `outcomes: ${Object.entries(total.outcomes)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v}`)
    .join(', ')}`,
);
log(`targets: ${ALL_TARGETS.map((t) => `${t} ${total.targets[t] ?? 0}`).join(', ')}`);
const idle = ALL_TARGETS.filter((t) => !total.targets[t]);
if (idle.length) log(`WARNING: no case reached ${idle.join(', ')}: run longer`);
log(`slowest case: ${summary.slowest.ms} ms (#${summary.slowest.index}, ${summary.slowest.how}); peak RSS ${summary.peakRssMiB} MiB`);
if (values.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
process.exit(total.bugs > 0 ? 1 : 0);
