import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { capabilityList, connectQmp, getConfig, pollMigrate, qemuArgs, sleep, startQemu, type QemuProcess, type QmpClient } from '../../fixtures/qemu/lib.mjs';
import { CLI } from './cli.js';

/** A QEMU of the boot-sector guest (fixtures/qemu): pc.ram in `memPath`, QMP connected. */
export interface Vm {
  proc: QemuProcess;
  qmp: QmpClient;
  memPath: string;
  close(): Promise<void>;
}

const MiB = 1 << 20;

async function startVm(work: string, name: string, incoming: boolean, running = false): Promise<Vm> {
  const memPath = join(work, `${name}-ram.bin`);
  const qmpPath = join(work, `${name}-qmp.sock`);
  const args = qemuArgs(getConfig('plain'), { memPath, qmpPath, incoming });
  // A running destination starts its guest once the migration lets it (postcopy: at POSTCOPY_RUN).
  const proc = startQemu(running ? args.filter((a) => a !== '-S') : args);
  let qmp: QmpClient;
  try {
    qmp = await connectQmp(qmpPath, { timeoutMs: 20000 });
  } catch (e) {
    await proc.kill();
    throw new Error(`${name}: ${(e as Error).message}: ${proc.stderr()}`);
  }
  return {
    proc,
    qmp,
    memPath,
    async close() {
      qmp.close();
      await proc.kill();
    },
  };
}

/** The source, running its guest; resolves once the guest's hot loop writes (page at 8 MiB non-zero). */
export async function startSource(work: string, caps: Record<string, boolean>, params: Record<string, unknown> = {}): Promise<Vm> {
  const vm = await startVm(work, 'src', false);
  const buf = Buffer.alloc(4096);
  const deadline = Date.now() + 60000;
  for (;;) {
    const fd = openSync(vm.memPath, 'r');
    readSync(fd, buf, 0, 4096, 8 * MiB);
    closeSync(fd);
    if (buf.some((b) => b !== 0)) break;
    if (Date.now() > deadline) {
      await vm.close();
      throw new Error('guest hot loop did not start');
    }
    await sleep(100);
  }
  await vm.qmp.execute('migrate-set-capabilities', { capabilities: capabilityList(caps) });
  if (Object.keys(params).length) await vm.qmp.execute('migrate-set-parameters', params);
  return vm;
}

/** A paused destination (`-incoming defer -S`, or without -S when `running`) listening on `uri`. */
export async function startDestination(work: string, name: string, caps: Record<string, boolean>, uri: string, running = false): Promise<Vm> {
  const vm = await startVm(work, name, true, running);
  await vm.qmp.execute('migrate-set-capabilities', { capabilities: capabilityList(caps) });
  await vm.qmp.execute('migrate-incoming', { uri });
  return vm;
}

export async function waitMigration(vm: Vm, what: string, deadlineMs = 120000): Promise<any> {
  return pollMigrate(vm.qmp, (i: any) => i.status === 'completed' || i.status === 'failed' || i.status === 'cancelled', {
    deadline: Date.now() + deadlineMs,
    intervalMs: 100,
    what,
    proc: vm.proc,
  });
}

export interface RelayProcess {
  child: ChildProcess;
  /** The URI it listens on (with the bound port for tcp:HOST:0). */
  listening: Promise<string>;
  exited: Promise<{ code: number | null; stdout: string; stderr: string }>;
  kill(): void;
}

/** `migstream relay ARGS` as a child process. */
export function startRelay(args: string[]): RelayProcess {
  const child = spawn(process.execPath, [CLI, 'relay', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let onListen: (u: string) => void = () => {};
  let onFail: (e: Error) => void = () => {};
  const listening = new Promise<string>((res, rej) => {
    onListen = res;
    onFail = rej;
  });
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => {
    stderr += d;
    const m = /listening on (\S+)/.exec(stderr);
    if (m) onListen(m[1]!);
  });
  const exited = new Promise<{ code: number | null; stdout: string; stderr: string }>((res) =>
    child.on('exit', (code) => {
      onFail(new Error(`relay exited before listening: ${stderr}`));
      res({ code, stdout, stderr });
    }),
  );
  return {
    child,
    listening,
    exited,
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

/** Resolves with the value, or rejects after `ms` naming `what`: nothing in these tests may hang. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, sleep(ms).then(() => Promise.reject(new Error(`${what}: no result within ${ms} ms`)))]);
}

export function readRam(path: string): Buffer {
  return readFileSync(path);
}
