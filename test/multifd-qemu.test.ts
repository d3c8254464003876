import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { multifdParameters, recordMultifd, startGuest, unpackFixture, type Guest } from '../fixtures/multifd/lib.mjs';
import { capabilityList, decompressFixture, fixturePaths, pollMigrate, runIncoming } from '../fixtures/qemu/lib.mjs';
import { inspectMultifd } from '../src/multifd/inspect.js';
import { nativeZstdVersion } from '../src/multifd/node-zstd.js';
import { CLI, requireBuiltCli, runCli } from './support/cli.js';
import { qemuGate } from './support/qemu.js';
import { within } from './support/relay.js';
import { dumpSeries } from './support/dumps.js';

const gate = qemuGate();
requireBuiltCli();

const work = mkdtempSync(join(tmpdir(), 'migstream-multifd-qemu-'));
const vms: Guest[] = [];
afterEach(async () => {
  for (const vm of vms.splice(0)) await vm.close();
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A paused 7.2 destination with multifd (N channels, compression) fed `dir` by `migstream replay`; resolves with its pc.ram. */
async function loadMultifd(name: string, dir: string, channels: number, compression: 'none' | 'zlib' | 'zstd'): Promise<Buffer> {
  const sock = join(work, `${name}.sock`);
  const dst = await startGuest(work, name, true);
  vms.push(dst);
  await dst.qmp.execute('migrate-set-capabilities', { capabilities: capabilityList({ multifd: true }) });
  await dst.qmp.execute('migrate-set-parameters', multifdParameters({ name, channels, compression }));
  await dst.qmp.execute('migrate-incoming', { uri: `unix:${sock}` });
  const child = spawn(process.execPath, [CLI, 'replay', dir, '--connect', `unix:${sock}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
  try {
    const info = await pollMigrate(dst.qmp, (i: { status: string }) => i.status === 'completed', {
      deadline: Date.now() + 60000,
      intervalMs: 100,
      what: `${name} loading`,
      proc: dst.proc,
    }).catch((e: Error) => {
      throw new Error(`${e.message}; replay: ${stderr}`);
    });
    expect(info.status).toBe('completed');
    expect(await within(exited, 20000, 'replay exit')).toBe(0);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
  return readFileSync(dst.memPath);
}

describe.skipIf(!gate.run)('QEMU 7.2 loads migstream multifd output', () => {
  const plain = fixturePaths('plain');
  const single = join(work, 'plain.bin');
  const truth = () => decompressFixture(plain.ram);

  for (const [compression, channels] of [
    ['none', 2],
    ['zlib', 3],
    ['zstd', 4],
  ] as const) {
    it(`a single-channel QEMU stream → ${channels} ${compression} channels: the destination's pc.ram is byte-exact`, async () => {
      writeFileSync(single, decompressFixture(plain.stream));
      const dir = join(work, `split-${compression}`);
      const r = runCli(['transcode', single, dir, '--multifd', String(channels), '--multifd-compression', compression]);
      expect([r.code, r.stderr]).toEqual([0, expect.stringMatching(/^wrote /)]);
      // our own reader agrees before QEMU does
      const m = (await inspectMultifd(dir))!;
      expect(m.channels.map((c) => c.compression ?? compression)).toEqual(Array(channels).fill(compression));
      // zstd is libzstd's (zstd-napi), entropy-coded: well under the pages' size, unlike the raw/RLE fallback
      if (compression === 'zstd' && nativeZstdVersion) expect(m.wireBytes).toBeLessThan(m.pages * 4096 * 0.6);
      const ram = await loadMultifd(`dst-${compression}`, dir, channels, compression);
      expect(ram.equals(truth())).toBe(true);
    });
  }

  it('encode --dumps --template --multifd 2 --multifd-compression zlib: loaded with pc.ram equal to the last dump', async () => {
    writeFileSync(single, decompressFixture(plain.stream));
    const dumps = dumpSeries(new Uint8Array(truth()), 3).map((d, i) => {
      const p = join(work, `dump${i}.bin`);
      writeFileSync(p, d);
      return p;
    });
    const dir = join(work, 'encoded-multifd');
    const r = runCli(['encode', '--dumps', ...dumps, '--template', single, '--out', dir, '--multifd', '2', '--multifd-compression', 'zlib']);
    expect(r.code, r.stderr).toBe(0);
    const ram = await loadMultifd('dst-dumps', dir, 2, 'zlib');
    expect(ram.equals(readFileSync(dumps[2]!))).toBe(true);
  });

  it('a QEMU multifd recording (zstd, 4 channels) → one plain stream that a destination without multifd loads byte-exact', async () => {
    const f = unpackFixture('zstd-4', join(work, 'zstd-4'));
    const out = join(work, 'zstd-4-plain.bin');
    expect(runCli(['transcode', f.rec, out]).code).toBe(0);
    const res = await runIncoming({ config: 'plain', streamPath: out, workDir: join(work, 'plain-dst'), timeoutMs: 60000 });
    expect(readFileSync(res.ramPath).equals(f.ram)).toBe(true);
  });

  it('xbzrle + multifd: QEMU 7.2 sends no XBZRLE; the recording decodes to the destination RAM and inspect says so', async () => {
    const r = await recordMultifd({ name: 'xbzrle', compression: 'none', channels: 2 }, join(work, 'xbzrle'), { syncs: 2, capabilities: { xbzrle: true } });
    expect(r.srcInfo['xbzrle-cache'].pages).toBe(0);
    const out = join(work, 'xbzrle-extract');
    expect(runCli(['extract', r.rec, '--out', out]).code).toBe(0);
    expect(readFileSync(join(out, 'pc.ram.bin')).equals(readFileSync(r.dstRam))).toBe(true);
    const m = (await inspectMultifd(r.rec))!;
    expect(m.pages - m.duplicates).toBe(r.srcInfo.ram.normal);
    expect(m.notes.join('\n')).toMatch(/^no XBZRLE: QEMU 7.2 never uses XBZRLE with multifd/);
  });

  it('a QEMU multifd recording (none, 2 channels) re-encoded as 3 zlib channels loads byte-exact', async () => {
    const f = unpackFixture('none-2', join(work, 'none-2'));
    const dir = join(work, 'none-2-as-zlib-3');
    expect(runCli(['transcode', f.rec, dir, '--multifd', '3', '--multifd-compression', 'zlib']).code).toBe(0);
    const ram = await loadMultifd('dst-rezlib', dir, 3, 'zlib');
    expect(ram.equals(f.ram)).toBe(true);
  });
});
