import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadFixture } from '../fixtures/qemu/lib.mjs';
import { transcodeBytes } from '../src/stream/transcode.js';
import { sameBytes, smallStream } from './support/build.js';
import { dumpSeries } from './support/dumps.js';
import { requireBuiltCli, runCli } from './support/cli.js';

const work = mkdtempSync(join(tmpdir(), 'migstream-cli-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const run = runCli;
requireBuiltCli();

describe('migstream CLI', () => {
  const fx = loadFixture('plain');
  const streamPath = join(work, 'plain.stream');
  writeFileSync(streamPath, fx.stream);

  it('inspect prints a summary and documented JSON', () => {
    const text = run(['inspect', streamPath]);
    expect(text.code).toBe(0);
    expect(text.stdout.toString()).toMatch(/machine pc-i440fx-7\.2, page size 4096/);
    const json = run(['inspect', streamPath, '--json']);
    const s = JSON.parse(json.stdout.toString());
    expect(Object.keys(s)).toEqual([
      'streamBytes',
      'version',
      'machine',
      'capabilities',
      'pageSize',
      'ramBlocks',
      'iterations',
      'totals',
      'blockDevices',
      'blockProgress',
      'commands',
      'sections',
      'devices',
      'deviceStateBytes',
      'vmdesc',
      'vmdescBytes',
      'warnings',
      'manifest',
      'compression',
      'digests',
      'dirtyBitmaps',
    ]);
    expect(s.totals.zero.pages).toBe(fx.queryMigrate.ram.duplicate);
    expect(s.streamBytes).toBe(fx.stream.length);
  });

  it('reads stdin and writes stdout with "-"', () => {
    const r = run(['transcode', '-', '-'], fx.stream);
    expect(r.code).toBe(0);
    expect(sameBytes(r.stdoutBytes, transcodeBytes(fx.stream))).toBe(true);
    const i = run(['inspect', '-', '--json'], fx.stream);
    expect(JSON.parse(i.stdout.toString()).streamBytes).toBe(fx.stream.length);
  });

  it('extract names files after the idstr, URI-encoded', () => {
    const dir = join(work, 'extract');
    const r = run(['extract', streamPath, '--out', dir]);
    expect(r.code).toBe(0);
    expect(sameBytes(readFileSync(join(dir, 'pc.ram.bin')), fx.ram)).toBe(true);
    expect(existsSync(join(dir, '0000%3A00%3A02.0%2Fvga.vram.bin'))).toBe(true);
    expect(JSON.parse(readFileSync(join(dir, 'devices.json'), 'utf8')).machine).toBe('pc-i440fx-7.2');
  });

  it('transcode --xbzrle writes a smaller stream and reports QEMU-style counters', () => {
    // a plain stream that re-sends the same pages: three dumps of real guest RAM, a few bytes apart
    const dumps = dumpSeries(new Uint8Array(fx.ram), 3).map((d, i) => {
      const p = join(work, `series${i}.bin`);
      writeFileSync(p, d);
      return p;
    });
    const plain = join(work, 'series.stream');
    expect(run(['encode', '--dumps', ...dumps, '--out', plain]).code).toBe(0);
    const out = join(work, 'x.stream');
    const r = run(['transcode', plain, out, '--xbzrle=16MiB', '--cache-policy', 'qemu', '--stats']);
    expect(r.code).toBe(0);
    const counters = /xbzrle: pages ([1-9]\d*), bytes (\d+), cache miss \d+, cache miss rate [\d.]+, overflow (\d+)/.exec(r.stderr);
    expect(counters, r.stderr).not.toBeNull();
    expect(readFileSync(out).length).toBeLessThan(readFileSync(plain).length);
    // the output decodes to the last dump, and carries exactly the XBZRLE pages the counters report
    const dir = join(work, 'x-extract');
    expect(run(['extract', out, '--out', dir]).code).toBe(0);
    expect(sameBytes(readFileSync(join(dir, 'pc.ram.bin')), readFileSync(dumps[2]!))).toBe(true);
    // QEMU's "pages" are cache hits: XBZRLE records + overflows + unchanged pages (the --stats table's columns)
    const rows = r.stderr
      .split('\n')
      .filter((l) => /^\s*\d+\s/.test(l))
      .map((l) => l.trim().split(/\s+/).map(Number));
    const column = (i: number) => rows.reduce((n, row) => n + row[i]!, 0);
    expect(rows.length, r.stderr).toBe(4); // QEMU's setup stage (iteration 0, no pages), then the three dumps
    const records = column(3);
    expect(records + column(4) + Number(counters![3])).toBe(Number(counters![1]));
    const totals = JSON.parse(run(['inspect', out, '--json']).stdout.toString()).totals;
    expect(totals.xbzrle.pages).toBe(records);
    expect(records).toBeGreaterThan(250);
  });

  it('encode --dumps builds a stream whose last iteration is the last dump', () => {
    const d0 = join(work, 'd0.bin');
    const d1 = join(work, 'd1.bin');
    const a = new Uint8Array(64 * 4096);
    writeFileSync(d0, a);
    a[5 * 4096 + 7] = 9;
    writeFileSync(d1, a);
    const out = join(work, 'dumps.stream');
    const r = run(['encode', '--dumps', d0, d1, '--out', out, '--block', 'pc.ram', '--xbzrle']);
    expect(r.code).toBe(0);
    const dir = join(work, 'dumps-x');
    expect(run(['extract', out, '--out', dir]).code).toBe(0);
    expect(sameBytes(readFileSync(join(dir, 'pc.ram.bin')), a)).toBe(true);
  });

  it('encode --disk --chunk writes variable-size chunks that extract back to the disk', () => {
    const d = join(work, 'dz.bin');
    writeFileSync(d, new Uint8Array(16 * 4096));
    const img = new Uint8Array(200 * 1024).fill(7, 70000, 90000);
    const imgPath = join(work, 'disk.img');
    writeFileSync(imgPath, img);
    const out = join(work, 'chunks.stream');
    const r = run(['encode', '--dumps', d, '--out', out, '--disk', `vd0=${imgPath}`, '--chunk', '64KiB']);
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(run(['inspect', out, '--json']).stdout.toString());
    expect(s.blockDevices[0]).toMatchObject({ device: 'vd0', chunks: 4, zeroChunks: 3, chunkSizes: [65536, 8192] });
    const dir = join(work, 'chunks-x');
    expect(run(['extract', out, '--out', dir]).code).toBe(0);
    expect(sameBytes(readFileSync(join(dir, 'vd0.img')), img)).toBe(true);
    expect(run(['encode', '--dumps', d, '--out', out, '--disk', `vd0=${imgPath}`, '--chunk', '3000']).code).toBe(2);
    // the same with compressed chunks on 2 workers: same disk back, same bytes as in the main thread
    const packed = join(work, 'chunks-lz4.stream');
    const flags = ['--disk', `vd0=${imgPath}`, '--chunk', '64KiB', '--chunk-compress', 'lz4'];
    expect(run(['encode', '--dumps', d, '--out', packed, ...flags, '--workers', '2']).code).toBe(0);
    const inline = join(work, 'chunks-lz4-0.stream');
    expect(run(['encode', '--dumps', d, '--out', inline, ...flags]).code).toBe(0);
    expect(sameBytes(readFileSync(packed), readFileSync(inline))).toBe(true);
    const p = JSON.parse(run(['inspect', packed, '--json']).stdout.toString());
    expect(p.blockDevices[0]).toMatchObject({ device: 'vd0', chunks: 4, zeroChunks: 3, compressedChunks: 1, compressedChunkBytes: 65536 });
    expect(p.blockDevices[0].bytes).toBeLessThan(1000);
    const px = join(work, 'chunks-lz4-x');
    expect(run(['extract', packed, '--out', px]).code).toBe(0);
    expect(sameBytes(readFileSync(join(px, 'vd0.img')), img)).toBe(true);
    expect(run(['verify', packed, '--against', px]).code).toBe(0);
  });

  it('exits 2 on usage errors and 3 with one line naming the byte offset on a bad stream', () => {
    expect(run(['frobnicate']).code).toBe(2);
    expect(run(['extract', streamPath]).code).toBe(2);
    expect(run(['transcode', streamPath, '/tmp/x', '--cache-policy', 'mru', '--xbzrle']).code).toBe(2);
    const bad = smallStream().slice(0, 200);
    bad[30] = 0x09;
    const r = run(['inspect', '-'], bad);
    expect(r.code).toBe(3);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/at byte \d+: /);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    const truncated = run(['inspect', '-'], smallStream().slice(0, 100));
    expect(truncated.code).toBe(3);
    expect(truncated.stderr).toMatch(/^migstream: bad stream \[TRUNCATED\] at byte 100: unexpected end of stream/);
  });

  it('verify exits 0 when DIR matches, 1 naming the first differing page, 3 on a bad stream', () => {
    const dir = join(work, 'verify');
    expect(run(['extract', streamPath, '--out', dir]).code).toBe(0);
    const ok = run(['verify', streamPath, '--against', dir, '--json']);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout.toString()).every((e: { status: string }) => e.status === 'equal')).toBe(true);
    const ram = readFileSync(join(dir, 'pc.ram.bin'));
    ram[0x801003]! ^= 1;
    ram[0x900000]! ^= 1;
    writeFileSync(join(dir, 'pc.ram.bin'), ram);
    const bad = run(['verify', streamPath, '--against', dir, '--json']);
    expect(bad.code).toBe(1);
    const pc = JSON.parse(bad.stdout.toString()).find((e: { name: string }) => e.name === 'pc.ram');
    expect(pc).toMatchObject({ status: 'different', firstDifference: 0x801000, differing: 2 });
    expect(run(['verify', '-', '--against', dir], smallStream().slice(0, 50)).code).toBe(3);
  });

  it('exits 1 with one line when a file cannot be read', () => {
    const r = run(['inspect', join(work, 'missing.stream')]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});
