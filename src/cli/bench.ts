import { closeSync, openSync, readFileSync, readSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { renderHtml, renderTable } from '../bench/report.js';
import { runBench, type BenchInput, type BenchPhase, type BenchResult } from '../bench/runner.js';
import { benchSettings, type BenchSetting } from '../bench/settings.js';
import { UsageError } from './io.js';

export const BENCH_USAGE = `bench DUMP… [--json FILE] [--html FILE] [--quick] [--pages N] [--workers N,N…] [--runs N] [--block NAME]`;

export const BENCH_HELP = `  ${BENCH_USAGE}
                                               measure every codec setting on a series of RAM dumps (raw images
                                               of one RAMBlock, same size): wire bytes, ratio, encode and decode
                                               MB/s, each decoded back and checked; table on stdout, --json and
                                               --html (charts, opens offline) reports; --quick: a few settings
                                               on 2048 pages sampled over the
                                               dumps; --pages N: the first N pages; --workers: worker counts for the
                                               compressed settings (default 1,2); --runs: best of N`;

const PAGE = 4096;
const QUICK_PAGES = 2048;

function positiveInt(text: string | undefined, flag: string, min: number, max: number): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > max) throw new UsageError(`${flag} expects an integer ${min}..${max}, got "${text}"`);
  return n;
}

function workerList(text: string | undefined): number[] | undefined {
  if (text === undefined) return undefined;
  const list = text.split(',').map((w) => positiveInt(w.trim(), '--workers', 0, 64)!);
  return [...new Set(list)].sort((a, b) => a - b);
}

/** Reads `ranges` ([offset, length] in bytes) of a file, concatenated. */
function readRanges(path: string, ranges: [number, number][]): Uint8Array {
  const out = new Uint8Array(ranges.reduce((n, [, len]) => n + len, 0));
  const fd = openSync(path, 'r');
  try {
    let at = 0;
    for (const [offset, len] of ranges) {
      let got = 0;
      while (got < len) {
        const n = readSync(fd, out, at + got, len - got, offset + got);
        if (n === 0) throw new Error(`${path}: shorter than expected`);
        got += n;
      }
      at += len;
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

/** Runs of this many pages make up a --quick sample: neighbouring pages stay neighbours. */
const SAMPLE_RUN = 64;

/**
 * `count` pages of a `pages`-page dump: all of them when count ≥ pages; else
 * with `spread`, runs of 64 pages evenly spaced over the dump (a sample of
 * the whole RAM), else the first `count`.
 */
export function pageRanges(pages: number, count: number | undefined, spread: boolean): [number, number][] {
  if (count === undefined || count >= pages) return [[0, pages * PAGE]];
  if (!spread || count <= SAMPLE_RUN) return [[0, count * PAGE]];
  const runs = Math.floor(count / SAMPLE_RUN);
  const ranges: [number, number][] = [];
  for (let i = 0; i < runs; i++) {
    const first = Math.floor((i * (pages - SAMPLE_RUN)) / Math.max(1, runs - 1));
    ranges.push([first * PAGE, SAMPLE_RUN * PAGE]);
  }
  return ranges;
}

/**
 * Reads and checks the dumps: same size, a whole number of pages (usage
 * errors otherwise); `pages` limits each dump to that many pages, the first
 * ones or, with `spread`, runs spread over the dump.
 */
export function readDumps(paths: string[], idstr: string, limit: { pages?: number; spread?: boolean } = {}): BenchInput {
  if (paths.length === 0) throw new UsageError('bench needs at least one DUMP');
  const sizes = paths.map((p) => statSync(p).size);
  for (const [i, size] of sizes.entries()) {
    if (size === 0 || size % PAGE !== 0) throw new UsageError(`${paths[i]}: ${size} bytes is not a whole number of ${PAGE}-byte pages`);
    if (size !== sizes[0]) throw new UsageError(`${paths[i]}: ${size} bytes, but ${paths[0]} has ${sizes[0]}: the dumps of a series share one size`);
  }
  const pages = sizes[0]! / PAGE;
  const ranges = pageRanges(pages, limit.pages, limit.spread === true);
  const whole = ranges.length === 1 && ranges[0]![1] === sizes[0];
  const dumps = paths.map((p) => (whole ? new Uint8Array(readFileSync(p)) : readRanges(p, ranges)));
  const used = dumps[0]!.length / PAGE;
  return {
    idstr,
    paths,
    dumps,
    pagesLimit: whole ? undefined : used,
    pageSelection: whole
      ? undefined
      : ranges.length > 1
        ? `${ranges.length} runs of ${SAMPLE_RUN} pages spread over each dump`
        : `the first ${used} pages of each dump`,
    pageSize: PAGE,
  };
}

/**
 * Progress on stderr: a redrawn bar when stderr is a terminal, one plain line
 * per setting otherwise (logs, CI).
 */
export class Progress {
  private readonly tty: boolean;
  private readonly start = Date.now();
  private drawn = false;

  constructor(private readonly out: NodeJS.WriteStream = process.stderr) {
    this.tty = out.isTTY === true;
  }

  private elapsed(): string {
    const s = Math.round((Date.now() - this.start) / 1000);
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
  }

  phase(setting: BenchSetting, phase: BenchPhase, done: number, total: number, run: number): void {
    if (!this.tty) return;
    const cols = Math.max(40, this.out.columns ?? 80);
    const width = Math.min(30, Math.max(10, cols - 60));
    const filled = Math.round((done / total) * width);
    const bar = `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
    const what = `${setting.label}${setting.workers ? ` · ${setting.workers}w` : ''}: ${phase}${run > 0 ? ` (run ${run + 1})` : ''}`;
    const line = `${bar} ${done}/${total} ${this.elapsed()} ${what}`;
    this.out.write(`\r\x1b[K${line.slice(0, cols - 1)}`);
    this.drawn = true;
  }

  result(r: BenchResult, done: number, total: number, run: number): void {
    if (this.tty) return;
    const what = `${r.label}${r.workers ? `, ${r.workers} worker${r.workers === 1 ? '' : 's'}` : ''}${run > 0 ? ` (best of ${run + 1} runs)` : ''}`;
    const numbers = r.roundTrip
      ? `${r.wireBytes} bytes (${((r.ratio ?? 0) * 100).toFixed(1)}%), encode ${r.encodeMBps!.toFixed(1)} MB/s, decode ${r.decodeMBps!.toFixed(1)} MB/s`
      : `FAILED: ${r.error}`;
    this.out.write(`bench [${done}/${total} ${this.elapsed()}] ${what}: ${numbers}\n`);
  }

  end(): void {
    if (this.drawn) this.out.write('\r\x1b[K');
  }
}

function packageVersion(): string {
  try {
    return (createRequire(import.meta.url)('../../package.json') as { version?: string }).version ?? '';
  } catch {
    return '';
  }
}

export async function runBenchCommand(args: string[], version = packageVersion()): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        json: { type: 'string' },
        html: { type: 'string' },
        quick: { type: 'boolean' },
        pages: { type: 'string' },
        workers: { type: 'string' },
        runs: { type: 'string' },
        block: { type: 'string' },
      },
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const { values, positionals } = parsed;
  const quick = values.quick === true;
  const pages = positiveInt(values.pages, '--pages', 1, 2 ** 31) ?? (quick ? QUICK_PAGES : undefined);
  const workers = workerList(values.workers);
  const runs = positiveInt(values.runs, '--runs', 1, 100) ?? 1;
  if (values.json === '-' && values.html === '-') throw new UsageError('only one of --json and --html may be "-" (stdout)');
  const input = readDumps(positionals, values.block ?? 'pc.ram', { pages, spread: values.pages === undefined });
  const settings = benchSettings(input.dumps[0]!.length, { quick, workers });
  const progress = new Progress();
  const command = ['migstream', 'bench', ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
  let report;
  try {
    report = await runBench(input, settings, {
      runs,
      command,
      version,
      onPhase: (s, phase, done, total, run) => progress.phase(s, phase, done, total, run),
      onResult: (r, done, total, run) => progress.result(r, done, total, run),
    });
  } finally {
    progress.end();
  }
  const toStdout = values.json === '-' || values.html === '-';
  if (!toStdout) process.stdout.write(`${renderTable(report)}\n`);
  if (values.json !== undefined) {
    const text = `${JSON.stringify(report, null, 2)}\n`;
    if (values.json === '-') process.stdout.write(text);
    else writeFileSync(values.json, text);
  }
  if (values.html !== undefined) {
    const html = renderHtml(report);
    if (values.html === '-') process.stdout.write(html);
    else writeFileSync(values.html, html);
  }
  const bad = report.results.filter((r) => !r.roundTrip);
  if (bad.length) {
    process.stderr.write(`migstream: ${bad.length} setting(s) did not round-trip: ${bad.map((r) => r.id).join(', ')}\n`);
    return 1;
  }
  return 0;
}
