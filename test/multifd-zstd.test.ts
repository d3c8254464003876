import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Decompress } from 'fzstd';
import { afterAll, describe, expect, it } from 'vitest';
import { unpackFixture } from '../fixtures/multifd/lib.mjs';
import '../src/node/install.js';
import { channelDeflater, channelInflater } from '../src/multifd/channel-codecs.js';
import { inspectMultifd } from '../src/multifd/inspect.js';
import { nativeZstdDeflater, nativeZstdInflater, nativeZstdVersion } from '../src/multifd/node-zstd.js';
import { MultifdRecoder } from '../src/multifd/recode.js';
import { ZstdRawDeflater } from '../src/multifd/zstd-raw.js';
import { toolsRequired } from './support/tools.js';
import { requireBuiltCli, runCli } from './support/cli.js';

// zstd-napi is an optional dependency (native, built at install): CI must have it, elsewhere its absence skips.
if (!nativeZstdVersion && toolsRequired()) throw new Error('zstd-napi (optional dependency) did not load: multifd zstd needs it under CI');

const work = mkdtempSync(join(tmpdir(), 'migstream-multifd-zstd-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const f = unpackFixture('none-2', join(work, 'none-2'));
/** The guest's non-zero pages (920) in packets of 32 (a channel carries up to 128). */
const packets: Uint8Array[] = [];
{
  const pages: Uint8Array[] = [];
  for (let at = 0; at < f.ram.length; at += 4096) {
    const p = f.ram.subarray(at, at + 4096);
    if (p.some((b) => b !== 0)) pages.push(p);
  }
  for (let i = 0; i < pages.length; i += 32) packets.push(Buffer.concat(pages.slice(i, i + 32)));
}

describe.skipIf(!nativeZstdVersion)('multifd zstd on libzstd (zstd-napi)', () => {
  it('is the zstd channel codec under Node, with a flush per packet: each payload decodes alone, in order, to its pages', () => {
    const d = channelDeflater('zstd', 1);
    const portable = new Decompress((c) => got.push(c));
    let got: Uint8Array[] = [];
    const native = channelInflater('zstd');
    let wire = 0;
    let raw = 0;
    const rawWriter = new ZstdRawDeflater();
    for (const p of packets) {
      const payload = d.deflate(p);
      wire += payload.length;
      raw += rawWriter.deflate(p).length;
      got = [];
      portable.push(payload, false);
      expect(Buffer.concat(got).equals(p)).toBe(true);
      expect(Buffer.from(native.inflate(payload, p.length)).equals(p)).toBe(true);
    }
    // entropy coding: far below the raw/RLE writer it replaces (which keeps these pages' size)
    expect(packets.length).toBe(29);
    expect(wire).toBeLessThan(raw * 0.6);
  });

  it('inflates QEMU 7.2 zstd channels byte-exact: the zstd-4 fixture extracts to the destination RAM', async () => {
    const z = unpackFixture('zstd-4', join(work, 'zstd-4'));
    const m = (await inspectMultifd(z.rec))!;
    expect(m.channels.every((c) => c.compression === 'zstd')).toBe(true);
    // recode QEMU's zstd channels to zstd of our own and back: same pages
    for (const name of readdirSync(z.rec).filter((x) => /^conn-[1-9]\d*\.s2d$/.test(x))) {
      const bytes = readFileSync(join(z.rec, name));
      const ours: Uint8Array[] = [];
      const there = new MultifdRecoder({ compression: 'zstd', level: 3 }, (c) => ours.push(c.slice()));
      there.push(bytes);
      there.end();
      const back: Uint8Array[] = [];
      const none = new MultifdRecoder({ compression: 'none' }, (c) => back.push(c.slice()));
      none.push(Buffer.concat(ours));
      none.end();
      const direct: Uint8Array[] = [];
      const ref = new MultifdRecoder({ compression: 'none' }, (c) => direct.push(c.slice()));
      ref.push(bytes);
      ref.end();
      expect(Buffer.concat(back).equals(Buffer.concat(direct))).toBe(true);
    }
  });

  it('--multifd-long: a 2^27 window with long-distance matching, read back by the relay at the far end to the same packets', () => {
    const out: Uint8Array[] = [];
    const bytes = readFileSync(join(f.rec, 'conn-1.s2d'));
    const long = new MultifdRecoder({ compression: 'zstd', level: 3, long: true }, (c) => out.push(c.slice()));
    long.push(bytes);
    long.end();
    const wire = Buffer.concat(out);
    // the frame opens with the first packet that has pages (the second: the first is an empty SYNC): window 2^(10 + 17)
    const frame = wire.indexOf(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]));
    expect(frame).toBe(64 + 2 * 1344);
    expect(wire[frame + 4]! & 0x20).toBe(0); // not single-segment: a window descriptor follows
    expect(wire[frame + 5]).toBe((27 - 10) << 3);
    const back: Uint8Array[] = [];
    const far = new MultifdRecoder({ compression: 'none' }, (c) => back.push(c.slice()));
    far.push(wire);
    far.end();
    const direct: Uint8Array[] = [];
    const ref = new MultifdRecoder({ compression: 'none' }, (c) => direct.push(c.slice()));
    ref.push(bytes);
    ref.end();
    expect(Buffer.concat(back).equals(Buffer.concat(direct))).toBe(true);
  });

  it('refuses a corrupt payload, a short one and one inflating past its pages (no output past the limit)', () => {
    const p = packets[0]!;
    const payload = nativeZstdDeflater(1).deflate(p);
    const bad = payload.slice();
    bad[6]! |= 0x06; // the first block's type: 3 is reserved
    expect(() => nativeZstdInflater().inflate(bad, p.length)).toThrow(/^zstd decompress failed: /);
    expect(() => nativeZstdInflater().inflate(payload.subarray(0, payload.length - 40), p.length)).toThrow(
      new RegExp(`packet size received \\d+ size expected ${p.length}`),
    );
    expect(() => nativeZstdInflater().inflate(payload, p.length - 4096)).toThrow(`inflate generated more than ${p.length - 4096} bytes`);
  });
});

describe('relay --multifd-long and --multifd-level (CLI)', () => {
  requireBuiltCli();
  const relay = (...extra: string[]) => runCli(['relay', '--listen', `unix:${join(work, 'x.sock')}`, '--connect', `unix:${join(work, 'y.sock')}`, ...extra]);
  it('--multifd-long is zstd (and zstd-dedup) only; zstd levels go to 19 (exit 2, one line naming the rule)', () => {
    for (const [args, rule] of [
      [['--multifd-compression', 'brotli', '--multifd-long'], '--multifd-long needs --multifd-compression zstd or zstd-dedup'],
      [['--multifd-long'], '--multifd-long needs --multifd-compression zstd or zstd-dedup'],
      [['--multifd-compression', 'zstd', '--multifd-level', '20'], '--multifd-level is 0..19 for zstd'],
      [['--multifd-compression', 'zstd-dedup', '--multifd-level', '20'], '--multifd-level is 0..19 for zstd-dedup'],
      [['--multifd-compression', 'lz4'], '--multifd-compression is none, zlib, zstd, brotli or zstd-dedup'],
    ] as const) {
      const r = relay(...args);
      expect([r.code, r.stderr.split('\n')[0]]).toEqual([2, `migstream: ${rule}`]);
    }
  });
});
