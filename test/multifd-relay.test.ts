import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { multifdParameters, startGuest, waitHotLoop, type Guest } from '../fixtures/multifd/lib.mjs';
import { capabilityList, pollMigrate } from '../fixtures/qemu/lib.mjs';
import { inspectMultifd } from '../src/multifd/inspect.js';
import { CLI, requireBuiltCli } from './support/cli.js';
import { qemuGate } from './support/qemu.js';
import { startRelay, within, type RelayProcess } from './support/relay.js';

const gate = qemuGate();
requireBuiltCli();

const work = mkdtempSync(join(tmpdir(), 'migstream-multifd-relay-'));
const vms: Guest[] = [];
const relays: RelayProcess[] = [];
afterEach(async () => {
  for (const r of relays.splice(0)) r.kill();
  for (const vm of vms.splice(0)) await vm.close();
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

const CHANNELS = 2;
const params = multifdParameters({ name: 'relay', channels: CHANNELS, compression: 'none' });

async function destination(name: string, uri: string): Promise<Guest> {
  const vm = await startGuest(work, name, true);
  vms.push(vm);
  await vm.qmp.execute('migrate-set-capabilities', { capabilities: capabilityList({ multifd: true }) });
  await vm.qmp.execute('migrate-set-parameters', params);
  await vm.qmp.execute('migrate-incoming', { uri });
  return vm;
}

const completed = (vm: Guest, what: string) =>
  pollMigrate(vm.qmp, (i: { status: string }) => i.status === 'completed', { deadline: Date.now() + 90000, intervalMs: 100, what, proc: vm.proc });

const channelBytes = (dir: string) =>
  readdirSync(dir)
    .filter((f) => /^conn-[1-9]\d*\.s2d$/.test(f))
    .reduce((n, f) => n + statSync(join(dir, f)).size, 0);

describe.skipIf(!gate.run)('a live multifd migration through a relay pair', () => {
  for (const [between, workers] of [
    ['brotli', 0],
    ['zstd', 2],
    ['zstd-dedup', 2],
  ] as const)
    it(`none at both QEMUs, ${between} between the relays${workers ? `, channels on ${workers} workers per relay` : ' (inline)'}: the destination RAM equals a fresh destination fed the source bytes`, async () => {
      await pair(between, workers);
    });
});

async function pair(between: 'brotli' | 'zstd' | 'zstd-dedup', workers: number): Promise<void> {
  {
    const tag = `${between}-${workers}`;
    const recA = join(work, `recA-${tag}`);
    const recB = join(work, `recB-${tag}`);
    const pool = workers ? ['--workers', String(workers)] : [];
    const dstUri = `unix:${join(work, `dst-${tag}.sock`)}`;
    const b = startRelay(['--listen', 'tcp:127.0.0.1:0', '--connect', dstUri, '--once', '--record', recB, '--json', '--multifd-compression', 'none', ...pool]);
    relays.push(b);
    const bUri = await within(b.listening, 10000, 'relay B listening');
    const aUri = `unix:${join(work, `a-${tag}.sock`)}`;
    const a = startRelay(['--listen', aUri, '--connect', bUri, '--once', '--record', recA, '--json', '--multifd-compression', between, ...pool]);
    relays.push(a);
    await within(a.listening, 10000, 'relay A listening');

    const dst = await destination(`dst-${tag}`, dstUri);
    const src = await startGuest(work, `src-${tag}`, false);
    vms.push(src);
    await waitHotLoop(src);
    await src.qmp.execute('migrate-set-capabilities', { capabilities: capabilityList({ multifd: true }) });
    await src.qmp.execute('migrate-set-parameters', { ...params, 'max-bandwidth': 256 << 20, 'downtime-limit': 300 });
    await src.qmp.execute('migrate', { uri: aUri });
    expect((await completed(src, 'source')).status).toBe('completed');
    expect((await completed(dst, 'destination')).status).toBe('completed');
    const [ra, rb] = await within(Promise.all([a.exited, b.exited]), 20000, 'relays exit after --once');
    expect([ra.code, rb.code]).toEqual([0, 0]);
    if (workers) {
      // each relay pinned the channels one per worker (their summaries name the worker that held each one's state)
      for (const r of [ra, rb]) {
        const conns = JSON.parse(r.stdout).connections as { kind: string; multifdWorker?: number }[];
        expect(
          conns
            .filter((c) => c.kind !== 'main')
            .map((c) => c.multifdWorker)
            .sort(),
        ).toEqual([0, 1]);
      }
    }

    // Relay A's recording is what QEMU sent (none); relay B's what went between the relays (brotli).
    const qemu = (await inspectMultifd(recA))!;
    const middle = (await inspectMultifd(recB))!;
    expect(qemu.channels.map((c) => c.compression)).toEqual(Array(CHANNELS).fill('none'));
    expect(middle.channels.map((c) => c.compression)).toEqual(Array(CHANNELS).fill(between));
    // channel ids, packets, sync points and pages unchanged
    const shape = (m: typeof qemu) =>
      m.channels.map((c) => [c.channel, c.source, c.packets, c.syncPackets, c.pages]).sort((x, y) => Number(x[0]) - Number(y[0]));
    expect(shape(middle)).toEqual(shape(qemu));
    expect(channelBytes(recB)).toBeLessThan(channelBytes(recA) / 2);

    // The oracle: a fresh destination fed the source's recorded bytes.
    const oUri = `unix:${join(work, `oracle-${tag}.sock`)}`;
    const oracle = await destination(`oracle-${tag}`, oUri);
    const replay = spawn(process.execPath, [CLI, 'replay', recA, '--connect', oUri], { stdio: 'ignore' });
    const replayed = new Promise<number | null>((res) => replay.on('exit', (c) => res(c)));
    expect((await completed(oracle, 'oracle')).status).toBe('completed');
    expect(await within(replayed, 20000, 'replay exit')).toBe(0);
    const live = readFileSync(dst.memPath);
    expect(live.subarray(8 << 20, (8 << 20) + 4096).some((x) => x !== 0)).toBe(true);
    expect(live.equals(readFileSync(oracle.memPath))).toBe(true);
    console.log(
      `multifd relay (${tag}): QEMU channels ${channelBytes(recA)} bytes, between relays ${channelBytes(recB)} (${((100 * channelBytes(recB)) / channelBytes(recA)).toFixed(1)}%)`,
    );
  }
}
