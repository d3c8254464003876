import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { CLI } from './cli.js';
import { startDestination, waitMigration, within, type Vm } from './relay.js';

/** A fresh paused destination fed `recording` with `migstream replay`; resolves once it completed loading. */
export async function replayInto(work: string, name: string, caps: Record<string, boolean>, recording: string, vms: Vm[], extra: string[] = []): Promise<Vm> {
  const uri = `unix:${join(work, `${name}.sock`)}`;
  const vm = await startDestination(work, name, caps, uri);
  vms.push(vm);
  const child = spawn(process.execPath, [CLI, 'replay', recording, '--connect', uri, '--json', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
  try {
    const info = await waitMigration(vm, `${name} loading the replay`);
    if (info.status !== 'completed') throw new Error(`${name}: replay load ${info.status}: ${vm.proc.stderr()} ${stderr}`);
    const code = await within(exited, 20000, 'replay exit');
    if (code !== 0) throw new Error(`replay exited ${code}: ${stderr}`);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
  return vm;
}
