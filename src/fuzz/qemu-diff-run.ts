/**
 * The differential fuzzing loop: each case loaded by a real QEMU 7.2
 * destination (from a pool started ahead) and by migstream, judged, counted,
 * and every disagreement kept as a reproducer (a delta against its fixture).
 */
import { mkdirSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brotliCompressSync, constants as zc } from 'node:zlib';
import { walkStream } from './walk.js';
import { diffCase, type DiffCase, type FixtureBase } from './qemu-cases.js';
import { DestinationPool, loadQemuLib, type Destination, type QemuConfig, type QemuLib } from './qemu-dest.js';
import { judge, migstreamLoad, type Judgement, type MigstreamResult, type Verdict } from './qemu-diff.js';
import { DiskImage } from '../stream/disk-image.js';
import { deltaOf, type StreamDelta } from './qemu-delta.js';

export interface DiffOptions {
  seed: number;
  /** First case index (to resume or split a run). */
  start?: number;
  cases: number;
  /** Stop starting cases after this many seconds. */
  seconds?: number;
  /** Fixture names (default: every committed fixture of fixtures/qemu CONFIGS). */
  fixtures?: string[];
  /** Bound on one QEMU load; past it the case is a qemu-hang. */
  timeoutMs?: number;
  /** Where results.jsonl and reproducers go (nothing written without it). */
  out?: string;
  onProgress?: (s: DiffSummary) => void;
}

export interface CaseRecord {
  index: number;
  fixture: string;
  how: string;
  bytes: number;
  verdict: Verdict;
  /** Agreement, or a disagreement docs/fuzzing.md documents (see `documented`). */
  documented: boolean;
  qemu?: Judgement['qemu'];
  qemuStatus: string;
  /** How QEMU ended when it did not load: exit code or signal. */
  qemuExit?: { code: number | null; signal: string | null };
  qemuMs: number;
  migstream: { status: string; code?: string; message?: string; warnings: string[]; ms: number };
  differ?: string;
}

export interface DiffSummary {
  seed: number;
  start: number;
  cases: number;
  wallSeconds: number;
  verdicts: Record<Verdict, number>;
  /** QEMU-alone rejections by reason: "device-state:<section>" or "wire:<section or message>". */
  qemuRejects: Record<string, number>;
  /** Cases where migstream loaded with a warning (a damaged vmdesc trailer), by code. */
  warnings: Record<string, number>;
  /** Disagreements not documented: each one is a bug to fix or explain. */
  undocumented: CaseRecord[];
  perFixture: Record<string, number>;
  meanQemuMs: number;
  meanMigstreamMs: number;
}

/**
 * The disagreements docs/fuzzing.md explains, which do not fail a run: QEMU
 * rejecting device state migstream passes through without judging it, or a
 * stream that does not fit its machine (migstream reads streams, not machines).
 */
export function documented(r: Pick<CaseRecord, 'verdict' | 'qemu'> & { migstream?: { status: string } }): boolean {
  if (r.verdict === 'both-load-equal' || r.verdict === 'both-reject') return true;
  if (!r.qemu) return false;
  // QEMU's own crashes (docs/qemu-findings.md) on a stream migstream rejects as well, or one that does not fit the destination
  if (r.verdict === 'qemu-crash') {
    return (r.migstream?.status === 'rejected' || r.qemu.kind !== 'wire') && KNOWN_QEMU_CRASHES.some((re) => re.test(r.qemu!.message));
  }
  if (r.verdict !== 'qemu-rejects') return false;
  return r.qemu.kind === 'device-state' || r.qemu.kind === 'destination' || [...KNOWN_LENIENCY, ...DEVICE_FRAMING].some((re) => re.test(r.qemu!.message));
}

/**
 * Bytes after a device section's footer (a duplicated footer, say): QEMU knows from the device's vmstate where
 * its data ends and then finds no section type; migstream, which reads everything before the device state
 * strictly, only gets here in the device state, whose sections have no length on the wire.
 */
const DEVICE_FRAMING = [/^Unknown savevm section type \d+$/];

/**
 * docs/qemu-findings.md: (1) a MEM_SIZE length of 2^64-1 for a resizeable ACPI RAMBlock aborts in fw_cfg;
 * (2) with the compress capability, a configuration section that is missing or fails to load is a SIGSEGV;
 * (3) a machine-name length of 0xfffffffe makes GLib abort on a 2^64-2 byte allocation.
 */
const KNOWN_QEMU_CRASHES = [
  /fw_cfg_modify_bytes_read: Assertion `key < fw_cfg_max_entry\(s\) && len < UINT32_MAX' failed/,
  /^(Configuration section missing|Failed to load configuration:|Machine type received is )/,
  /^GLib: .*failed to allocate \d+ bytes/,
];

/** Records migstream reads on purpose that a 7.2 destination refuses: QEMU 8.1+'s multifd flush (0x200, with or without CONTINUE). */
const KNOWN_LENIENCY = [/^Unknown combination of migration flags: 0x2[02]0$/];

const VERDICTS: Verdict[] = ['both-load-equal', 'both-reject', 'qemu-rejects', 'migstream-rejects', 'both-load-differ', 'qemu-crash', 'qemu-hang'];

export async function runDiff(o: DiffOptions): Promise<DiffSummary> {
  const lib = await loadQemuLib();
  const q = lib.qemuAvailable();
  if (!q.ok) throw new Error(`differential fuzzing needs QEMU 7.2: ${q.reason}`);
  const work = join(process.platform === 'linux' ? '/dev/shm' : tmpdir(), `migstream-qdiff-${process.pid}`);
  mkdirSync(work, { recursive: true });
  const { bases, truth, configs } = loadBases(lib, o.fixtures);
  const ignoreShared = join(work, 'initial-ram.bin');
  for (const [name, t] of truth) if (configs.get(name)!.destCapabilities['x-ignore-shared']) writeFileSync(ignoreShared, t);
  const initialRam = (c: QemuConfig) => (c.destCapabilities['x-ignore-shared'] ? ignoreShared : undefined);
  const pool = new DestinationPool(lib, work, initialRam);
  if (o.out) mkdirSync(join(o.out, 'findings'), { recursive: true });
  const start = o.start ?? 0;
  const s = newSummary(o.seed, start);
  const t0 = Date.now();
  const deadline = o.seconds !== undefined ? t0 + o.seconds * 1000 : Infinity;
  let qemuMs = 0;
  let migMs = 0;
  try {
    pool.prefetch(configs.get(bases[start % bases.length]!.name)!);
    for (let i = start; i < start + o.cases && Date.now() < deadline; i++) {
      const c = diffCase(o.seed, i, bases);
      const config = configs.get(c.fixture)!;
      const dest = await takeWithRetry(pool, config);
      if (i + 1 < start + o.cases) pool.prefetch(configs.get(bases[(i + 1) % bases.length]!.name)!);
      const casePath = join(work, `case-${i}.bin`);
      writeFileSync(casePath, c.bytes);
      const qemuRun = dest.load(lib, casePath, o.timeoutMs ?? 15_000);
      const ini = initialRam(config) ? truth.get(c.fixture) : undefined;
      let m: MigstreamResult;
      try {
        m = migstreamLoad(c.bytes, ini);
      } catch (e) {
        // not a MigstreamError: a crash of ours, counted as a rejection nobody documents
        m = { status: 'rejected', ms: 0, code: 'INTERNAL', message: String((e as Error)?.stack ?? e), warnings: [], disks: new DiskImage() };
      }
      const qr = await qemuRun;
      await dest.dispose();
      const j = judge(qr, m, {});
      const rec: CaseRecord = {
        index: i,
        fixture: c.fixture,
        how: c.how,
        bytes: c.bytes.length,
        verdict: j.verdict,
        documented: false,
        qemu: j.qemu,
        qemuStatus: qr.status,
        qemuExit: qr.exit,
        qemuMs: Math.round(qr.ms),
        migstream: { status: m.status, code: m.code, message: m.message, warnings: m.warnings.map((w) => w.code), ms: Math.round(m.ms) },
        differ: j.differ,
      };
      rec.documented = documented(rec);
      count(s, rec);
      qemuMs += qr.ms;
      migMs += m.ms;
      if (o.out) save(o.out, rec, c, bases, qr.stderr);
      rmSync(casePath, { force: true });
      s.wallSeconds = (Date.now() - t0) / 1000;
      o.onProgress?.(s);
    }
  } finally {
    await pool.close();
    rmSync(work, { recursive: true, force: true });
  }
  s.wallSeconds = (Date.now() - t0) / 1000;
  s.meanQemuMs = s.cases ? Math.round(qemuMs / s.cases) : 0;
  s.meanMigstreamMs = s.cases ? Math.round(migMs / s.cases) : 0;
  return s;
}

/** A destination that failed to start (QEMU under load, QMP slow) is retried; the third failure ends the run. */
async function takeWithRetry(pool: DestinationPool, config: QemuConfig): Promise<Destination> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await pool.take(config);
    } catch (e) {
      if (attempt >= 3) throw e;
      process.stderr.write(`destination for ${config.name} did not start (${(e as Error).message}); retrying\n`);
    }
  }
}

function loadBases(lib: QemuLib, names?: string[]): { bases: FixtureBase[]; truth: Map<string, Uint8Array>; configs: Map<string, QemuConfig> } {
  const wanted = names ?? lib.CONFIGS.map((c) => c.name);
  const bases: FixtureBase[] = [];
  const truth = new Map<string, Uint8Array>();
  const configs = new Map<string, QemuConfig>();
  for (const name of wanted) {
    const config = lib.getConfig(name);
    if (!lib.fixturePaths(name).exists) throw new Error(`fixture ${name} is missing (fixtures/qemu/${name}/stream.bin.br)`);
    const f = lib.loadFixture(name);
    const bytes = new Uint8Array(f.stream.buffer, f.stream.byteOffset, f.stream.length);
    bases.push({ name, bytes, map: walkStream(bytes) });
    truth.set(name, new Uint8Array(f.ram.buffer, f.ram.byteOffset, f.ram.length));
    configs.set(name, config);
  }
  return { bases, truth, configs };
}

export function newSummary(seed: number, start: number): DiffSummary {
  return {
    seed,
    start,
    cases: 0,
    wallSeconds: 0,
    verdicts: Object.fromEntries(VERDICTS.map((v) => [v, 0])) as Record<Verdict, number>,
    qemuRejects: {},
    warnings: {},
    undocumented: [],
    perFixture: {},
    meanQemuMs: 0,
    meanMigstreamMs: 0,
  };
}

export function count(s: DiffSummary, r: CaseRecord): void {
  s.cases++;
  s.verdicts[r.verdict]++;
  s.perFixture[r.fixture] = (s.perFixture[r.fixture] ?? 0) + 1;
  if (r.verdict === 'qemu-rejects' && r.qemu) {
    const what = r.qemu.kind === 'wire' ? `${r.qemu.section ?? '-'}: ${r.qemu.message.replace(/0x[0-9a-f]+|\d+/gi, 'N').slice(0, 70)}` : r.qemu.section;
    const k = `${r.qemu.kind}:${what ?? r.qemu.message.slice(0, 70)}`;
    s.qemuRejects[k] = (s.qemuRejects[k] ?? 0) + 1;
  }
  for (const w of r.migstream.warnings) s.warnings[w] = (s.warnings[w] ?? 0) + 1;
  if (!r.documented) s.undocumented.push(r);
}

/** results.jsonl gets every case; findings/ a reproducer for each disagreement (a delta, plus the whole case when large). */
function save(out: string, r: CaseRecord, c: DiffCase, bases: FixtureBase[], qemuStderr: string): void {
  appendFileSync(join(out, 'results.jsonl'), `${JSON.stringify(r)}\n`);
  if (r.verdict === 'both-load-equal' || r.verdict === 'both-reject') return;
  const base = bases.find((b) => b.name === c.fixture)!;
  const delta: StreamDelta = deltaOf(c.fixture, base.bytes, c.bytes);
  const name = `${r.verdict}-${c.fixture}-${c.index}`;
  const big = delta.middle.length > 131072;
  // quality 5: the default (11) takes minutes on a 40 MB case
  if (big) writeFileSync(join(out, 'findings', `${name}.bin.br`), brotliCompressSync(c.bytes, { params: { [zc.BROTLI_PARAM_QUALITY]: 5 } }));
  const meta = { ...r, qemuStderr, delta: big ? { ...delta, middle: `(${delta.middle.length / 2} bytes: see ${name}.bin.br)` } : delta };
  writeFileSync(join(out, 'findings', `${name}.json`), `${JSON.stringify(meta, null, 2)}\n`);
}
