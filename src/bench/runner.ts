import { createHash } from 'node:crypto';
import { cpus, loadavg, totalmem } from 'node:os';
import { decodeAll } from '../stream/decoder.js';
import { encodeDumps, type DumpSeries } from '../stream/dump-encoder.js';
import type { StreamEvent } from '../stream/events.js';
import { resolveSpec } from '../stream/page-codecs.js';
import { decodePooled, encodeDumpsPooled } from '../stream/pool/drivers.js';
import { RamImage } from '../stream/ram-image.js';
import type { XbzrleIterationStats } from '../stream/ram-sender.js';
import { concatBytes } from '../codec/concat.js';
import type { BenchSetting, SettingGroup } from './settings.js';

/** 1 MB = 1e6 bytes, as the other benchmarks count. */
export const MB = 1e6;

export interface BenchInput {
  /** RAMBlock name the dumps are encoded as. */
  idstr: string;
  /** Paths as given (for the report). */
  paths: string[];
  /** The dumps, all the same length, a multiple of the page size. */
  dumps: Uint8Array[];
  /** Set when only some pages of each dump are used (--quick, --pages): how many. */
  pagesLimit?: number;
  /** Which pages, in words. */
  pageSelection?: string;
  pageSize?: number;
}

export interface RecordCounts {
  zero: number;
  normal: number;
  xbzrle: number;
  unchanged: number;
  compressed: number;
}

export interface BenchResult {
  id: string;
  label: string;
  group: SettingGroup;
  workers: number;
  compress: { codec: 'zlib' | 'lz4'; level?: number; acceleration?: number } | null;
  xbzrle: { cacheBytes: number; policy: 'lru' | 'qemu' } | null;
  /** Decoded RAM equals the last dump (and every run wrote the same stream). Numbers are null when false. */
  roundTrip: boolean;
  /** Why the round trip failed. */
  error?: string;
  wireBytes: number | null;
  /** wireBytes / raw page bytes. */
  ratio: number | null;
  /** Fastest run, milliseconds of wall time. */
  encodeMs: number | null;
  decodeMs: number | null;
  /** Raw page bytes (MB) per second. */
  encodeMBps: number | null;
  decodeMBps: number | null;
  sha256: string | null;
  records: RecordCounts | null;
  /** XBZRLE cache: hits (XBZRLE records, overflows, unchanged pages) and misses over the whole series. */
  cache?: { hits: number; misses: number; hitRate: number; overflow: number };
}

export interface BenchReport {
  tool: 'migstream bench';
  version: string;
  date: string;
  command: string;
  machine: {
    cpus: number;
    cpuModel: string;
    memoryBytes: number;
    node: string;
    zlib: string;
    platform: string;
    loadavgStart: number[];
    loadavgEnd: number[];
  };
  input: {
    idstr: string;
    dumps: string[];
    /** Bytes of each dump used (after any page limit). */
    dumpBytes: number;
    pageSize: number;
    pagesLimit: number | null;
    pageSelection: string | null;
    iterations: number;
    /** Pages the series sends: every page in iteration 0, then the pages that changed. */
    pagesSent: number[];
    /** pagesSent × page size: the bytes a migration without zero detection or compression sends as pages. */
    rawBytes: number;
  };
  definitions: Record<string, string>;
  runs: number;
  results: BenchResult[];
}

export const DEFINITIONS: Record<string, string> = {
  rawBytes: 'page bytes the series sends: every page of the first dump, then each page that differs from the previous dump, 4096 bytes each',
  wireBytes: 'bytes of the migration stream written (records, headers, sections, EOF)',
  ratio: 'wire bytes / raw page bytes',
  encodeMBps:
    'raw page bytes (1 MB = 1e6 bytes) per second of wall time from the dumps in memory to the stream in memory; with workers: a plain encode, then pages recompressed on the pool (as migstream encode --workers does)',
  decodeMBps: 'raw page bytes per second of wall time from the stream in memory to a RAM image, compressed pages inflated on the workers when there are any',
  roundTrip: 'the decoded RAM equals the last dump byte for byte (a setting that fails reports no numbers)',
  cacheHitRate: 'XBZRLE cache hits / (hits + misses) over the pages sent after iteration 0, as QEMU counts them',
};

export type BenchPhase = 'encode' | 'decode';

export interface BenchHooks {
  /** Before each phase of each measurement: `done` measurements finished of `total` (runs × settings). */
  onPhase?(setting: BenchSetting, phase: BenchPhase, done: number, total: number, run: number): void;
  /** After each measurement: the setting's result so far (fastest runs), `done` measurements of `total`. */
  onResult?(result: BenchResult, done: number, total: number, run: number): void;
  /** Tests only: alters each encoded stream before it is decoded and checked. */
  mutateStream?(stream: Uint8Array, setting: BenchSetting): void;
}

class ChunkSink {
  readonly parts: Uint8Array[] = [];
  bytes = 0;
  write = (chunk: Uint8Array): void => {
    this.parts.push(chunk.slice());
    this.bytes += chunk.length;
  };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;
}

function sumRecords(history: XbzrleIterationStats[]): RecordCounts {
  const r: RecordCounts = { zero: 0, normal: 0, xbzrle: 0, unchanged: 0, compressed: 0 };
  for (const s of history) {
    r.zero += s.records.zero;
    r.normal += s.records.normal;
    r.xbzrle += s.records.xbzrle;
    r.unchanged += s.records.unchanged;
    r.compressed += s.records.compressed;
  }
  return r;
}

interface Encoded {
  stream: Uint8Array;
  /** The stream's length, kept after the stream is dropped. */
  bytes?: number;
  ms: number;
  history: XbzrleIterationStats[];
  pagesSent: number[];
}

async function encode(setting: BenchSetting, series: DumpSeries[]): Promise<Encoded> {
  const spec = setting.compress ? resolveSpec(setting.compress) : undefined;
  const t0 = performance.now();
  if (setting.workers === 0 || !spec) {
    const sink = new ChunkSink();
    const r = encodeDumps(series, sink.write, { xbzrle: setting.xbzrle, compress: spec });
    const ms = performance.now() - t0;
    return { stream: concatBytes(sink.parts), ms, history: r.xbzrle, pagesSent: r.iterations.map((i) => i.pagesSent) };
  }
  // As `migstream encode --workers N`: pages compress on the pool, records in call order (the bytes equal encodeDumps').
  const sink = new ChunkSink();
  const r = await encodeDumpsPooled(series, sink.write, { xbzrle: setting.xbzrle, compress: spec, workers: setting.workers });
  return { stream: concatBytes(sink.parts), ms: performance.now() - t0, history: r.xbzrle, pagesSent: r.iterations.map((i) => i.pagesSent) };
}

async function decode(stream: Uint8Array, workers: number, idstr: string): Promise<{ ms: number; ram: Uint8Array | undefined }> {
  const ram = new RamImage();
  const handler = (ev: StreamEvent): void => {
    if (ev.type === 'ram-blocks') ram.setBlocks(ev.blocks);
    else if (ev.type === 'page') ram.apply(ev);
  };
  const t0 = performance.now();
  if (workers === 0) decodeAll(stream, handler);
  else await decodePooled(stream, handler, { workers });
  return { ms: performance.now() - t0, ram: ram.blocks.get(idstr) };
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function failed(setting: BenchSetting, error: string): BenchResult {
  return {
    ...describe(setting),
    roundTrip: false,
    error,
    wireBytes: null,
    ratio: null,
    encodeMs: null,
    decodeMs: null,
    encodeMBps: null,
    decodeMBps: null,
    sha256: null,
    records: null,
  };
}

function describe(setting: BenchSetting): Pick<BenchResult, 'id' | 'label' | 'group' | 'workers' | 'compress' | 'xbzrle'> {
  const c = setting.compress;
  return {
    id: setting.id,
    label: setting.label,
    group: setting.group,
    workers: setting.workers,
    compress: c ? (c.codec === 'zlib' ? { codec: 'zlib', level: c.level ?? 1 } : { codec: 'lz4', acceleration: c.acceleration ?? 1 }) : null,
    xbzrle: setting.xbzrle ? { ...setting.xbzrle } : null,
  };
}

/** One encode and decode of a setting, its output checked. */
type Measurement = { ok: true; encoded: Encoded; sha256: string; decodeMs: number } | { ok: false; error: string; pagesSent?: number[] };

export async function measureOnce(
  setting: BenchSetting,
  input: BenchInput,
  progress?: (phase: BenchPhase) => void,
  mutateStream?: BenchHooks['mutateStream'],
): Promise<Measurement> {
  const series: DumpSeries[] = [{ idstr: input.idstr, dumps: input.dumps }];
  const last = input.dumps[input.dumps.length - 1]!;
  progress?.('encode');
  const e = await encode(setting, series);
  const hash = sha256(e.stream);
  mutateStream?.(e.stream, setting);
  progress?.('decode');
  let d;
  try {
    d = await decode(e.stream, setting.workers, input.idstr);
  } catch (err) {
    return { ok: false, error: `decoding failed: ${(err as Error).message}` };
  }
  if (!d.ram || !sameBytes(d.ram, last)) {
    return { ok: false, error: d.ram ? 'the decoded RAM differs from the last dump' : `no RAMBlock ${input.idstr} in the decoded stream` };
  }
  // keep the timings and counters, not the stream
  return { ok: true, encoded: { ...e, stream: new Uint8Array(0), bytes: e.stream.length }, sha256: hash, decodeMs: d.ms };
}

/** The result of a setting from its measurements (the fastest encode and decode). */
function summarise(setting: BenchSetting, runs: Measurement[], rawBytes: number, expectedSent: number[]): BenchResult {
  const bad = runs.find((m) => !m.ok);
  if (bad && !bad.ok) return failed(setting, bad.error);
  const ok = runs as Extract<Measurement, { ok: true }>[];
  if (ok.some((m) => m.sha256 !== ok[0]!.sha256)) return failed(setting, 'two runs wrote different streams');
  const sent = ok[0]!.encoded.pagesSent;
  if (sent.join() !== expectedSent.join()) return failed(setting, `the encoder sent ${sent.join('/')} pages per iteration, expected ${expectedSent.join('/')}`);
  const e = ok.reduce((a, m) => (m.encoded.ms < a.ms ? m.encoded : a), ok[0]!.encoded);
  const decodeMs = Math.min(...ok.map((m) => m.decodeMs));
  const wireBytes = e.bytes!;
  const result: BenchResult = {
    ...describe(setting),
    roundTrip: true,
    wireBytes,
    ratio: wireBytes / rawBytes,
    encodeMs: e.ms,
    decodeMs,
    encodeMBps: rawBytes / MB / (e.ms / 1000),
    decodeMBps: rawBytes / MB / (decodeMs / 1000),
    sha256: ok[0]!.sha256,
    records: sumRecords(e.history),
  };
  if (setting.xbzrle) {
    let hits = 0;
    let misses = 0;
    let overflow = 0;
    for (const s of e.history) {
      hits += s.pages;
      misses += s.cacheMiss;
      overflow += s.overflow;
    }
    result.cache = { hits, misses, hitRate: hits + misses ? hits / (hits + misses) : 0, overflow };
  }
  return result;
}

/** Pages the series sends: all of the first dump, then those that differ from the previous dump. */
export function pagesSent(dumps: Uint8Array[], pageSize: number): number[] {
  const out = [dumps[0]!.length / pageSize];
  for (let i = 1; i < dumps.length; i++) {
    const a = dumps[i - 1]!;
    const b = dumps[i]!;
    let n = 0;
    for (let off = 0; off < b.length; off += pageSize) {
      if (Buffer.compare(Buffer.from(a.buffer, a.byteOffset + off, pageSize), Buffer.from(b.buffer, b.byteOffset + off, pageSize)) !== 0) n++;
    }
    out.push(n);
  }
  return out;
}

/**
 * Runs every setting on the dump series. Settings that share their stream
 * but differ only in workers must write identical bytes: a mismatch fails
 * the later one.
 */
export async function runBench(
  input: BenchInput,
  settings: BenchSetting[],
  options: { runs?: number; command?: string; version?: string } & BenchHooks = {},
): Promise<BenchReport> {
  const pageSize = input.pageSize ?? 4096;
  const runs = Math.max(1, options.runs ?? 1);
  const loadavgStart = loadavg();
  const sent = pagesSent(input.dumps, pageSize);
  const rawBytes = sent.reduce((a, b) => a + b, 0) * pageSize;
  // Runs are rounds over every setting, so a burst of other load slows one run of many settings,
  // not every run of one setting; each setting keeps its fastest encode and decode.
  const measured: Measurement[][] = settings.map(() => []);
  for (let run = 0; run < runs; run++) {
    for (const [i, setting] of settings.entries()) {
      if (measured[i]!.some((m) => !m.ok)) continue;
      const step = run * settings.length + i;
      const m = await measureOnce(setting, input, (phase) => options.onPhase?.(setting, phase, step, runs * settings.length, run), options.mutateStream);
      measured[i]!.push(m);
      options.onResult?.(summarise(setting, measured[i]!, rawBytes, sent), step + 1, runs * settings.length, run);
    }
  }
  const results = settings.map((setting, i) => summarise(setting, measured[i]!, rawBytes, sent));
  // the same codec settings on other worker counts must write the same stream
  const streams = new Map<string, string>();
  for (const [i, result] of results.entries()) {
    const setting = settings[i]!;
    const key = JSON.stringify([setting.compress ?? null, setting.xbzrle ?? null]);
    if (!result.roundTrip || !result.sha256) continue;
    const other = streams.get(key);
    if (other === undefined) streams.set(key, result.sha256);
    else if (other !== result.sha256) results[i] = failed(setting, 'wrote a different stream than the same codec on another worker count');
  }
  const cpu = cpus();
  return {
    tool: 'migstream bench',
    version: options.version ?? '',
    date: new Date().toISOString(),
    command: options.command ?? '',
    machine: {
      cpus: cpu.length,
      cpuModel: cpu[0]?.model ?? '',
      memoryBytes: totalmem(),
      node: process.version,
      zlib: process.versions.zlib ?? '',
      platform: `${process.platform} ${process.arch}`,
      loadavgStart,
      loadavgEnd: loadavg(),
    },
    input: {
      idstr: input.idstr,
      dumps: input.paths,
      dumpBytes: input.dumps[0]!.length,
      pageSize,
      pagesLimit: input.pagesLimit ?? null,
      pageSelection: input.pageSelection ?? null,
      iterations: input.dumps.length,
      pagesSent: sent,
      rawBytes,
    },
    definitions: DEFINITIONS,
    runs,
    results,
  };
}
