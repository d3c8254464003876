import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { dirtyRateReport, type DirtyRateReport } from '../plan/dirty-rate.js';
import { FileDumpSource } from '../plan/files.js';
import { planMigration } from '../plan/plan.js';
import { PLAN_DEFINITIONS, renderPlanHtml, renderPlanTable, type PlanReport } from '../plan/report.js';
import { DEFAULT_SETTINGS, parseSetting, type PlanSetting } from '../plan/settings.js';
import { Trace } from '../plan/trace.js';
import { UsageError, parseSize, table } from './io.js';

export const PLAN_HELP = `  dirty-rate D0 D1 … --interval SECONDS [--sample-pages N] [--seed N] [--json]
                                               exact dirty rate between RAM dumps taken SECONDS apart, QEMU 7.2's
                                               calc-dirty-rate sampling estimate and its error, working set, hot set
  plan D0 D1 … --interval SECONDS --bandwidth RATE --downtime-limit MS [--settings S,S…]
       [--throttle auto|none] [--throttle-response K] [--defer-hot K] [--cap SECONDS] [--cores N] [--vcpus V]
       [--json] [--html FILE]
                                               simulate QEMU 7.2 pre-copy on the dumps for each setting (plain,
                                               xbzrle[:SIZE[:lru|qemu]], zlib[:LEVEL], lz4[:ACC], joined with +,
                                               /wN workers): converges?, rounds, time, bytes, downtime; RATE in
                                               bytes/s with K/M/G (64M = 64 MiB/s); --cores: the source host's
                                               cores (default: this machine's); --vcpus: the guest's busy vCPUs,
                                               which share them with compression (the guest slows while it runs);
                                               --throttle-response K: a throttle of p leaves the guest (1 − p)^K
                                               of its dirtying speed (default 1)`;

function packageVersion(): string {
  try {
    return (createRequire(import.meta.url)('../../package.json') as { version?: string }).version ?? '';
  } catch {
    return '';
  }
}

function number(text: string | undefined, flag: string, min: number, max: number, integer = false): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || n < min || n > max || (integer && !Number.isInteger(n))) {
    throw new UsageError(`${flag} expects ${integer ? 'an integer' : 'a number'} ${min}..${max}, got "${text}"`);
  }
  return n;
}

function parse(args: string[], options: Record<string, { type: 'string' | 'boolean' }>) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** A redrawn bar on a terminal; nothing otherwise (logs stay clean). */
class Bar {
  private readonly tty = process.stderr.isTTY === true;
  private drawn = false;
  draw(fraction: number, text: string): void {
    if (!this.tty) return;
    const width = 30;
    const filled = Math.round(Math.min(1, fraction) * width);
    process.stderr.write(`\r\x1b[K${'█'.repeat(filled)}${'░'.repeat(width - filled)} ${text}`.slice(0, (process.stderr.columns ?? 80) - 1));
    this.drawn = true;
  }
  end(): void {
    if (this.drawn) process.stderr.write('\r\x1b[K');
  }
}

function openTrace(paths: string[], interval: number, bar: Bar): { trace: Trace; source: FileDumpSource } {
  if (paths.length < 2) throw new UsageError('needs at least two dumps D0 D1 …');
  let source: FileDumpSource;
  try {
    source = new FileDumpSource(paths);
  } catch (e) {
    if (e instanceof RangeError) throw new UsageError(e.message);
    throw e;
  }
  const trace = Trace.build(source, interval, (done, total) => bar.draw(done / total, `comparing dumps ${Math.round((done / total) * 100)}%`));
  return { trace, source };
}

function renderDirtyRate(r: DirtyRateReport): string {
  const rows: string[][] = [['interval', 'changed pages', 'MiB/s', 'QEMU sample MiB/s', 'error']];
  for (const [k, i] of r.intervals.entries()) {
    const e = r.sampling.estimates[k]!;
    rows.push([
      `${k}→${k + 1}`,
      String(i.pages),
      i.mibPerSecond.toFixed(2),
      e.mibPerSecond === null ? '–' : String(e.mibPerSecond),
      e.errorMiBps === null
        ? '–'
        : `${e.errorMiBps >= 0 ? '+' : ''}${e.errorMiBps.toFixed(2)}${e.relativeError === null ? '' : ` (${(e.relativeError * 100).toFixed(0)}%)`}`,
    ]);
  }
  const ws = r.workingSet;
  return [
    `${r.pages} pages of ${r.pageSize} bytes, snapshots ${r.interval} s apart; QEMU sampling: ${r.sampling.samplePagesPerGiB} pages per GiB, seed ${r.sampling.seed}${r.sampling.skipped ? ` (${r.sampling.skipped})` : ''}`,
    '',
    table(rows),
    '',
    `mean: ${r.mean.pages.toFixed(0)} pages, ${r.mean.mibPerSecond.toFixed(2)} MiB/s (${r.mean.mbPerSecond.toFixed(2)} MB/s)`,
    `working set: ${ws.total} pages changed at least once; in exactly 1, 2, … intervals: ${ws.pagesDirtiedIn.join(', ')}; hot (every interval): ${ws.hot}`,
  ].join('\n');
}

export async function runDirtyRate(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    interval: { type: 'string' },
    'sample-pages': { type: 'string' },
    seed: { type: 'string' },
    json: { type: 'boolean' },
  });
  const interval = number(values.interval as string | undefined, '--interval', 0.001, 1e6);
  if (interval === undefined) throw new UsageError('dirty-rate needs --interval SECONDS');
  const samplePages = number(values['sample-pages'] as string | undefined, '--sample-pages', 1, 1 << 20, true);
  const seed = number(values.seed as string | undefined, '--seed', 0, 2 ** 31, true);
  const bar = new Bar();
  const { trace, source } = openTrace(positionals, interval, bar);
  try {
    const report = dirtyRateReport(trace, { samplePages, seed });
    bar.end();
    process.stdout.write(
      values.json ? `${JSON.stringify({ tool: 'migstream dirty-rate', dumps: positionals, ...report }, null, 2)}\n` : `${renderDirtyRate(report)}\n`,
    );
    return 0;
  } finally {
    bar.end();
    source.close();
  }
}

export async function runPlan(args: string[], version = packageVersion()): Promise<number> {
  const { values, positionals } = parse(args, {
    interval: { type: 'string' },
    bandwidth: { type: 'string' },
    'downtime-limit': { type: 'string' },
    settings: { type: 'string' },
    throttle: { type: 'string' },
    'throttle-response': { type: 'string' },
    'defer-hot': { type: 'string' },
    cap: { type: 'string' },
    cores: { type: 'string' },
    vcpus: { type: 'string' },
    json: { type: 'boolean' },
    html: { type: 'string' },
  });
  const interval = number(values.interval as string | undefined, '--interval', 0.001, 1e6);
  if (interval === undefined) throw new UsageError('plan needs --interval SECONDS');
  const cores = number(values.cores as string | undefined, '--cores', 1, 4096, true);
  const vcpus = number(values.vcpus as string | undefined, '--vcpus', 0, 4096, true);
  const host = vcpus === undefined ? undefined : { cores: cores ?? cpus().length, vcpus };
  if (typeof values.bandwidth !== 'string') throw new UsageError('plan needs --bandwidth RATE (bytes/s, e.g. 32M)');
  const bandwidth = parseSize(values.bandwidth, '--bandwidth');
  if (bandwidth === 0) throw new UsageError('--bandwidth must be more than 0');
  const downtimeLimitMs = number(values['downtime-limit'] as string | undefined, '--downtime-limit', 1, 2_000_000, true);
  if (downtimeLimitMs === undefined) throw new UsageError('plan needs --downtime-limit MS');
  const throttle = (values.throttle as string | undefined) ?? 'none';
  if (throttle !== 'auto' && throttle !== 'none') throw new UsageError(`--throttle is auto or none, got "${throttle}"`);
  const deferHot = number(values['defer-hot'] as string | undefined, '--defer-hot', 0, 1000, true) ?? 0;
  const throttleResponse = number(values['throttle-response'] as string | undefined, '--throttle-response', 0, 8);
  const timeCap = number(values.cap as string | undefined, '--cap', 1, 1e6) ?? 600;
  let settings: PlanSetting[];
  try {
    settings = ((values.settings as string | undefined)?.split(',') ?? DEFAULT_SETTINGS).map(parseSetting);
  } catch (e) {
    throw new UsageError(`--settings: ${(e as Error).message}`);
  }
  const bar = new Bar();
  const { trace, source } = openTrace(positionals, interval, bar);
  try {
    const dirtyRate = dirtyRateReport(trace);
    const outcome = planMigration(trace, settings, {
      bandwidth,
      downtimeLimitMs,
      autoConverge: throttle === 'auto',
      throttleResponse,
      deferHot,
      timeCap,
      cores,
      host,
      onProgress: (i, n, s, seconds) => bar.draw((i + Math.min(1, seconds / timeCap)) / n, `${i + 1}/${n} ${s.label}: ${seconds.toFixed(0)} s simulated`),
    });
    bar.end();
    const command = ['migstream', 'plan', ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
    const report: PlanReport = {
      tool: 'migstream plan',
      version,
      date: new Date().toISOString(),
      command,
      input: { dumps: positionals, pages: trace.pages, pageSize: trace.pageSize, interval },
      link: {
        bandwidth,
        downtimeLimitMs,
        throttle,
        throttleResponse: throttleResponse ?? 1,
        deferHot,
        timeCap,
        cores: host?.cores ?? cores ?? null,
        vcpus: vcpus ?? null,
      },
      dirtyRate,
      ...outcome,
      definitions: PLAN_DEFINITIONS,
    };
    process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : `${renderPlanTable(report)}\n`);
    if (typeof values.html === 'string') writeFileSync(values.html, renderPlanHtml(report));
    return 0;
  } finally {
    bar.end();
    source.close();
  }
}
