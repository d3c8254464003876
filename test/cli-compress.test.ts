import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadFixture } from '../fixtures/qemu/lib.mjs';
import { encodeManifest } from '../src/stream/manifest.js';
import { StreamEncoder } from '../src/stream/encoder.js';
import { concatChunks, transcodeBytes } from '../src/stream/transcode.js';
import { sameBytes } from './support/build.js';
import { dumpSeries } from './support/dumps.js';
import { requireBuiltCli, runCli } from './support/cli.js';

const work = mkdtempSync(join(tmpdir(), 'migstream-cli-compress-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const run = runCli;

requireBuiltCli();

describe('migstream CLI: --compress and --workers', () => {
  const fx = loadFixture('plain');
  const input = join(work, 'plain.stream');
  writeFileSync(input, fx.stream);

  it("transcode --compress zlib: the same bytes with 0, 1 and 2 workers, equal to the library's", () => {
    const want = transcodeBytes(fx.stream, { compress: { codec: 'zlib', level: 6 } });
    for (const workers of ['0', '1', '2']) {
      const out = join(work, `z${workers}.stream`);
      const r = run(['transcode', input, out, '--compress', 'zlib', '--level', '6', '--workers', workers]);
      expect(r.code, r.stderr).toBe(0);
      expect(sameBytes(readFileSync(out), want)).toBe(true);
    }
  });

  it('transcode --compress lz4 writes an extension stream; inspect shows the manifest and compression stats', () => {
    const out = join(work, 'l.stream');
    expect(run(['transcode', input, out, '--compress', 'lz4', '--acceleration', '8', '--workers', '2']).code).toBe(0);
    expect(sameBytes(readFileSync(out), transcodeBytes(fx.stream, { compress: { codec: 'lz4', acceleration: 8 } }))).toBe(true);
    const text = run(['inspect', out]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('extension manifest v1: lz4-pages v1');
    expect(text.stdout).toMatch(/lz4 pages: \d+, \d+ payload bytes, ratio [\d.]+% of the pages/);
    const json = JSON.parse(run(['inspect', out, '--json']).stdout);
    expect(json.manifest.extensions[0]).toMatchObject({ name: 'lz4-pages', params: { acceleration: 8, flag: 1024 } });
    expect(json.compression.lz4.pages).toBe(json.totals.lz4.pages);
    expect(json.compression.zlib.pages).toBe(0);
    // back to QEMU mode without --compress
    const back = join(work, 'back.stream');
    expect(run(['transcode', out, back, '--workers', '2']).code).toBe(0);
    expect(sameBytes(readFileSync(back), transcodeBytes(fx.stream))).toBe(true);
    expect(JSON.parse(run(['inspect', back, '--json']).stdout).manifest).toBeNull();
  });

  it('encode --compress: inline and on workers give the same stream', () => {
    const dumps = dumpSeries(new Uint8Array(fx.ram.subarray(0, 4 << 20)), 3);
    const files = dumps.map((d, i) => {
      const f = join(work, `dump${i}.bin`);
      writeFileSync(f, d);
      return f;
    });
    for (const codec of ['zlib', 'lz4']) {
      const a = join(work, `enc-${codec}-0.stream`);
      const b = join(work, `enc-${codec}-2.stream`);
      expect(run(['encode', '--dumps', ...files, '--out', a, '--compress', codec]).code).toBe(0);
      expect(run(['encode', '--dumps', ...files, '--out', b, '--compress', codec, '--workers', '2']).code).toBe(0);
      expect(sameBytes(readFileSync(a), readFileSync(b))).toBe(true);
      const json = JSON.parse(run(['inspect', a, '--json']).stdout);
      expect(json.compression[codec].pages).toBeGreaterThan(0);
    }
  });

  it.each([
    [['--level', '3'], /--level and --acceleration need --compress/],
    [['--compress', 'lz4', '--level', '3'], /--level is for --compress zlib/],
    [['--compress', 'zlib', '--acceleration', '3'], /--acceleration is for --compress lz4/],
    [['--compress', 'brotli'], /--compress is zlib, lz4 or none/],
    [['--compress', 'zlib', '--level', '10'], /--level expects an integer 0..9/],
    [['--chunk-compress', 'lz4'], /--chunk-compress needs --chunk SIZE/],
    [['--chunk', '64KiB', '--chunk-compress', 'gzip'], /--chunk-compress is zlib, lz4 or none/],
    [['--chunk', '64KiB', '--chunk-compress', 'none', '--acceleration', '2'], /--level and --acceleration need --compress/],
  ])('usage errors exit 2: %j', (flags, message) => {
    const r = run(['transcode', input, join(work, 'x.stream'), ...flags]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });

  it('a stream with an extension this migstream lacks: exit 3 before any page', () => {
    const parts: Uint8Array[] = [];
    const e = new StreamEncoder((c) => parts.push(c));
    e.header()
      .configuration('pc-i440fx-7.2')
      .manifest(encodeManifest([{ name: 'iteration-digests', version: 1, params: { algorithm: 'sha-256' } }]));
    e.flush();
    const path = join(work, 'future.stream');
    writeFileSync(path, concatChunks(parts));
    const r = run(['inspect', path]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('[UNSUPPORTED_EXTENSION]');
    expect(r.stderr).toContain('"iteration-digests"');
  });
  it('--chunk with --compress or --chunk-compress: compressed disk chunks, the same bytes on 0 and 2 workers; inspect counts them', () => {
    const block = loadFixture('block');
    const src = join(work, 'block.stream');
    writeFileSync(src, block.stream);
    const size = block.config.disk!.size;
    const cases: [string[], { compress?: { codec: 'zlib' | 'lz4'; level?: number }; chunkCompress?: { codec: 'zlib' | 'lz4'; level?: number } }][] = [
      [['--compress', 'lz4'], { compress: { codec: 'lz4' }, chunkCompress: { codec: 'lz4' } }],
      [['--chunk-compress', 'zlib', '--level', '6'], { chunkCompress: { codec: 'zlib', level: 6 } }],
      [['--compress', 'zlib', '--chunk-compress', 'none'], { compress: { codec: 'zlib' } }],
    ];
    for (const [flags, options] of cases) {
      const want = transcodeBytes(block.stream, { blockChunk: 65536, diskSizes: { 'ide0-hd1': size }, ...options });
      for (const workers of ['0', '2']) {
        const out = join(work, `chunks-${workers}.stream`);
        const r = run(['transcode', src, out, '--chunk', '64KiB', '--disk-size', `ide0-hd1=${size}`, ...flags, '--workers', workers]);
        expect(r.code, r.stderr).toBe(0);
        expect(sameBytes(readFileSync(out), want), `${flags.join(' ')} on ${workers} workers`).toBe(true);
      }
      const json = JSON.parse(run(['inspect', join(work, 'chunks-0.stream'), '--json']).stdout);
      const dev = json.blockDevices[0];
      const names = json.manifest.extensions.map((e: { name: string }) => e.name);
      if (options.chunkCompress) {
        expect(names).toContain('chunk-compression');
        expect(dev.compressedChunks).toBeGreaterThan(0);
        expect(dev.bytes).toBeLessThan(dev.compressedChunkBytes);
        expect(run(['inspect', join(work, 'chunks-0.stream')]).stdout).toMatch(/compressed/);
      } else {
        expect(names).not.toContain('chunk-compression');
        expect(dev.compressedChunks).toBe(0);
      }
    }
  });
});
