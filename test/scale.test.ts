import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { StreamEncoder } from '../src/stream/encoder.js';
import { transcodeFile } from '../src/cli/commands.js';
import { AutoRamStore } from '../src/stream/files.js';
import { transcodeBytes } from '../src/stream/transcode.js';
import { loadFixture } from '../fixtures/qemu/lib.mjs';
import { sameBytes } from './support/build.js';
import { toolGate } from './support/tools.js';

const CLI = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');
const work = mkdtempSync(join(tmpdir(), 'migstream-scale-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A 1 GiB guest: every 8th page holds data (its index), re-sent once with a byte changed, so XBZRLE-free plain records. */
function writeBigStream(path: string): { pages: number } {
  const fd = openSync(path, 'w');
  const enc = new StreamEncoder((c) => writeSync(fd, c), { chunkSize: 1 << 20 });
  const total = 2 ** 30;
  const page = new Uint8Array(4096);
  enc.header().configuration('pc-i440fx-7.2');
  enc
    .sectionStart({ sectionId: 2, idstr: 'ram', instanceId: 0, versionId: 4 })
    .memSize([{ idstr: 'pc.ram', length: total }])
    .ramEos()
    .footer(2);
  let pages = 0;
  for (const pass of [0, 1]) {
    if (pass === 0) enc.sectionPart(2);
    else enc.sectionEnd(2);
    for (let off = 0; off < total; off += 4096) {
      const i = off / 4096;
      if (i % 8 !== 0) {
        if (pass === 0) enc.zeroPage('pc.ram', off);
        continue;
      }
      if (pass === 1 && i % 64 !== 0) continue;
      new DataView(page.buffer).setUint32(0, i);
      page[100] = pass;
      enc.page('pc.ram', off, page);
      pages++;
    }
    enc.ramEos().footer(2);
  }
  enc.raw(Uint8Array.of(0));
  enc.flush();
  closeSync(fd);
  return { pages };
}

function peakRss(args: string[]): { code: number | null; rssMiB: number; stderr: string } {
  const r = spawnSync('/usr/bin/time', ['-f', '%M', process.execPath, CLI, ...args], { encoding: 'utf8' });
  return { code: r.status, rssMiB: Number(r.stderr.trim().split('\n').at(-1)) / 1024, stderr: r.stderr };
}

const hasTime = toolGate(['/usr/bin/time', '--version'], 'the 1 GiB peak-RSS test');

describe('large guests stream in bounded memory', () => {
  it('a file-backed RAM store transcodes exactly like the in-memory one', async () => {
    for (const name of ['xbzrle-hit', 'compress-l1']) {
      const fx = loadFixture(name);
      const input = join(work, `${name}.stream`);
      const output = join(work, `${name}.out`);
      const { writeFileSync } = await import('node:fs');
      writeFileSync(input, fx.stream);
      const store = new AutoRamStore(4096); // anything above one page goes to disk
      await transcodeFile(input, output, { ramStore: store, xbzrle: { cacheBytes: 1 << 20, policy: 'qemu' } });
      expect(store.onDisk).toBe(true);
      expect(sameBytes(readFileSync(output), transcodeBytes(fx.stream, { xbzrle: { cacheBytes: 1 << 20, policy: 'qemu' } }))).toBe(true);
    }
  });

  it.skipIf(!hasTime)('extract, transcode and verify a 1 GiB guest with RAM on disk', () => {
    const stream = join(work, 'big.stream');
    writeBigStream(stream);
    const dir = join(work, 'big');
    const x = peakRss(['extract', stream, '--out', dir]);
    expect(x.code, x.stderr).toBe(0);
    const img = readFileSync(join(dir, 'pc.ram.bin'));
    expect(img.length).toBe(2 ** 30);
    const dv = new DataView(img.buffer, img.byteOffset);
    for (const i of [0, 8, 64, 262136]) {
      expect(dv.getUint32(i * 4096)).toBe(i);
      expect(img[i * 4096 + 100]).toBe(i % 64 === 0 ? 1 : 0);
    }
    expect(img[4096]).toBe(0);
    const out = join(work, 'big.out');
    const t = peakRss(['transcode', stream, out]);
    expect(t.code, t.stderr).toBe(0);
    const v = peakRss(['verify', out, '--against', dir]);
    expect(v.code, v.stderr).toBe(0);
    // bounded memory, not a speed target: the guest is 1 GiB, the processes stay far below it
    for (const r of [x, t, v]) expect(r.rssMiB).toBeLessThan(300);
  });
});
