/**
 * Real QEMU 7.2 destinations for the differential fuzzer: a small pool of
 * QEMUs started ahead with `-incoming defer -S` and their capabilities set,
 * so a case costs one `migrate-incoming exec:cat CASE`, not a boot. A
 * destination loads one stream and is thrown away (QEMU exits after a failed
 * incoming migration, and a loaded one holds the case's RAM).
 */
import { copyFileSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** What we use of fixtures/qemu/lib.mjs (plain ESM outside src/, loaded at run time). */
export interface QemuLib {
  CONFIGS: readonly QemuConfig[];
  qemuAvailable(): { ok: boolean; reason?: string; version?: string };
  getConfig(name: string): QemuConfig;
  qemuArgs(config: QemuConfig, o: { memPath: string; diskPaths?: Record<string, string>; qmpPath: string; incoming?: boolean }): string[];
  startQemu(args: string[]): QemuProcess;
  connectQmp(path: string, o?: { timeoutMs?: number }): Promise<QmpClient>;
  createZeroDisk(path: string, size: number, format?: 'raw' | 'qcow2'): void;
  destDiskSize(size: number): number;
  capabilityList(caps: Record<string, boolean>): { capability: string; state: boolean }[];
  shQuote(s: string): string;
  loadFixture(name: string): { stream: Uint8Array; ram: Uint8Array; disks: Record<string, Uint8Array> };
  fixturePaths(name: string): { exists: boolean };
}
export interface QemuConfig {
  name: string;
  disk?: { device: string; size: number; format?: 'raw' | 'qcow2' };
  blk?: boolean;
  destCapabilities: Record<string, boolean>;
  destParameters: Record<string, number | boolean | string>;
}
interface QemuProcess {
  child: { exitCode: number | null; signalCode: string | null; pid?: number };
  stderr(): string;
  exited: Promise<{ code: number | null; signal: string | null }>;
  kill(): Promise<void>;
}
interface QmpClient {
  execute(cmd: string, args?: object): Promise<unknown>;
  readonly events: { event: string; data?: { status?: string } }[];
  close(): void;
}

export async function loadQemuLib(): Promise<QemuLib> {
  return (await import(new URL('../../fixtures/qemu/lib.mjs', import.meta.url).href)) as QemuLib;
}

export type LoadStatus = 'loaded' | 'rejected' | 'crashed' | 'hang';

export interface LoadResult {
  status: LoadStatus;
  /** From migrate-incoming to the verdict. */
  ms: number;
  /** QEMU's stderr (its error_report lines). */
  stderr: string;
  exit?: { code: number | null; signal: string | null };
  /** pc.ram of a loaded destination, read before QEMU is killed. */
  ram?: Uint8Array;
  /** Disks of a loaded destination, by device name (1 MiB-rounded size). */
  disks?: Record<string, Uint8Array>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** One started destination, waiting for its stream. */
export class Destination {
  private constructor(
    readonly config: QemuConfig,
    private readonly dir: string,
    private readonly proc: QemuProcess,
    private readonly qmp: QmpClient,
    private readonly ramPath: string,
    private readonly diskPaths: Record<string, string>,
  ) {}

  /** Starts QEMU for `config` in `dir` (a fresh directory); `initialRam` is copied into pc.ram first (x-ignore-shared). */
  static async start(lib: QemuLib, config: QemuConfig, dir: string, initialRam?: string): Promise<Destination> {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const ramPath = join(dir, 'ram.bin');
    if (initialRam) copyFileSync(initialRam, ramPath);
    const diskPaths: Record<string, string> = {};
    if (config.disk) {
      const p = join(dir, `disk-${config.disk.device}.img`);
      lib.createZeroDisk(p, config.blk ? lib.destDiskSize(config.disk.size) : config.disk.size, config.disk.format);
      diskPaths[config.disk.device] = p;
    }
    const qmpPath = join(dir, 'qmp.sock');
    const proc = lib.startQemu(lib.qemuArgs(config, { memPath: ramPath, diskPaths, qmpPath, incoming: true }));
    let qmp: QmpClient | undefined;
    try {
      qmp = await Promise.race([
        lib.connectQmp(qmpPath, { timeoutMs: 20_000 }),
        proc.exited.then(() => Promise.reject(new Error(`destination QEMU exited before QMP was up: ${proc.stderr().trim()}`))),
      ]);
      // `events` makes QEMU announce the end of the load instead of us polling for it
      const caps = lib.capabilityList({ ...config.destCapabilities, events: true });
      await qmp.execute('migrate-set-capabilities', { capabilities: caps });
      if (Object.keys(config.destParameters).length) await qmp.execute('migrate-set-parameters', config.destParameters);
      return new Destination(config, dir, proc, qmp, ramPath, diskPaths);
    } catch (e) {
      qmp?.close();
      await proc.kill();
      throw e;
    }
  }

  /** Feeds `streamPath` with `exec:cat` and waits for QEMU's verdict, at most `timeoutMs`. */
  async load(lib: QemuLib, streamPath: string, timeoutMs: number): Promise<LoadResult> {
    const t0 = performance.now();
    const done = (status: LoadStatus, extra: Partial<LoadResult> = {}): LoadResult => ({
      status,
      ms: performance.now() - t0,
      stderr: this.proc.stderr(),
      ...extra,
    });
    let exited: { code: number | null; signal: string | null } | undefined;
    void this.proc.exited.then((x) => (exited = x));
    try {
      await this.qmp.execute('migrate-incoming', { uri: `exec:cat ${lib.shQuote(resolve(streamPath))}` });
    } catch {
      // QEMU died on the spot: judged below from its exit
    }
    const deadline = t0 + timeoutMs;
    for (;;) {
      if (exited) return this.judgeExit(exited, done);
      const ev = this.qmp.events.find((e) => e.event === 'MIGRATION' && (e.data?.status === 'completed' || e.data?.status === 'failed'));
      if (ev?.data?.status === 'completed') {
        const ram = new Uint8Array(readFileSync(this.ramPath));
        const disks: Record<string, Uint8Array> = {};
        for (const [d, p] of Object.entries(this.diskPaths)) disks[d] = new Uint8Array(readFileSync(p));
        return done('loaded', { ram, disks });
      }
      if (ev?.data?.status === 'failed') {
        // QEMU 7.2 exits after a failed incoming migration: wait for it (bounded by the deadline)
        const x = await Promise.race([this.proc.exited, sleep(Math.max(0, deadline - performance.now())).then(() => undefined)]);
        if (x) return this.judgeExit(x, done);
        return done('hang', { stderr: `${this.proc.stderr()}\n(migration failed but QEMU did not exit)` });
      }
      if (performance.now() > deadline) return done('hang');
      await sleep(5);
    }
  }

  private judgeExit(x: { code: number | null; signal: string | null }, done: (s: LoadStatus, e?: Partial<LoadResult>) => LoadResult): LoadResult {
    // exit(EXIT_FAILURE) after "load of migration failed"; a signal (abort, segfault) or any other code is a crash
    return done(x.signal === null && x.code === 1 ? 'rejected' : 'crashed', { exit: x });
  }

  async dispose(): Promise<void> {
    this.qmp.close();
    await this.proc.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Destinations started ahead of the case that needs them: `prefetch(config)`
 * for the next case while this one loads; `take(config)` returns the oldest
 * started one of that config (starting one if there is none).
 */
export class DestinationPool {
  private readonly ready = new Map<string, Promise<Destination>[]>();
  private serial = 0;

  constructor(
    private readonly lib: QemuLib,
    private readonly workDir: string,
    private readonly initialRam: (config: QemuConfig) => string | undefined,
  ) {}

  prefetch(config: QemuConfig): void {
    const list = this.ready.get(config.name) ?? [];
    const p = Destination.start(this.lib, config, join(this.workDir, `d${this.serial++}`), this.initialRam(config));
    p.catch(() => {}); // reported by take()
    list.push(p);
    this.ready.set(config.name, list);
  }

  async take(config: QemuConfig): Promise<Destination> {
    const list = this.ready.get(config.name);
    if (!list?.length) this.prefetch(config);
    return this.ready.get(config.name)!.shift()!;
  }

  async close(): Promise<void> {
    const all = [...this.ready.values()].flat();
    this.ready.clear();
    for (const p of all)
      await p.then(
        (d) => d.dispose(),
        () => {},
      );
  }
}
