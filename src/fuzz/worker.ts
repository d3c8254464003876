/** The fuzz worker: builds the corpus, runs the loop, reports findings (minimised) to the main thread. */
import '../node/install.js'; // Node's codecs, as under migstream/node (the fuzz targets compare them with the portable ones)
import { parentPort, workerData } from 'node:worker_threads';
import { buildCorpus } from './corpus.js';
import { prepareCorpus, runLoop, shrink, takeReferences } from './engine.js';
import { runFastCheck } from './fc-engine.js';
import { cleanScratch, loadExtraCodecs, setScratchDir } from './targets.js';

export interface WorkerInput {
  seed: number;
  startIndex: number;
  deadline: number;
  maxCases?: number;
  slowMs: number;
  fixtureDir?: string;
  synthetic: boolean;
  scratchDir?: string;
  shrinkMs: number;
  engine: 'loop' | 'fast-check' | 'fast-check-seed';
  progress: SharedArrayBuffer;
  hangAt?: number;
}

const input = workerData as WorkerInput;
const port = parentPort!;

const t0 = performance.now();
const built = buildCorpus({ fixtureDir: input.fixtureDir, syntheticOnly: input.synthetic });
const corpus = prepareCorpus(built.seeds);
takeReferences(corpus);
const extras = await loadExtraCodecs();
setScratchDir(input.scratchDir);
port.postMessage({
  type: 'ready',
  fixtures: built.fixtures,
  seeds: corpus.seeds.map((s) => `${s.name} (${s.bytes.length} B)`),
  references: corpus.references.length,
  codecs: [...extras.zlib.map((z) => z.name), ...extras.lz4.map((z) => z.name)],
  setupMs: performance.now() - t0,
});

if (input.engine === 'loop') {
  const stats = await runLoop({
    seed: input.seed,
    corpus,
    extras,
    startIndex: input.startIndex,
    maxCases: input.maxCases,
    deadline: input.deadline,
    slowMs: input.slowMs,
    extract: input.scratchDir !== undefined,
    progress: new Int32Array(input.progress),
    referenceEvery: 20_000,
    hangAt: input.hangAt,
    onFinding: ({ finding, c, index, how, sig }) => {
      // Shrinking counts against the run's time, but every finding gets a few seconds.
      const budgetMs = Math.min(input.shrinkMs, Math.max(3000, input.deadline - Date.now()));
      const small =
        finding.kind === 'reference'
          ? c
          : shrink(c, sig, extras, { budgetMs, slowMs: finding.kind === 'slow' ? input.slowMs * (1 + c.bytes.length / 2 ** 20) : undefined });
      port.postMessage({ type: 'finding', finding, c: small, originalLength: c.bytes.length, index, how, sig });
    },
  });
  cleanScratch();
  port.postMessage({ type: 'done', stats });
} else {
  const r = await runFastCheck({
    seed: input.seed,
    corpus,
    extras,
    seconds: Math.max(0, (input.deadline - Date.now()) / 1000),
    maxCases: input.maxCases,
    mode: input.engine === 'fast-check' ? 'gen' : 'seed',
  });
  for (const f of r.findings) port.postMessage({ type: 'finding', finding: f, c: undefined, index: -1, how: input.engine, sig: '' });
  port.postMessage({
    type: 'done',
    stats: {
      cases: r.cases,
      ms: r.ms,
      findings: r.findings.length,
      bugs: r.bugs.size,
      outcomes: {},
      kinds: {},
      slowest: { index: -1, ms: 0, how: '' },
      nextIndex: -1,
    },
  });
}
