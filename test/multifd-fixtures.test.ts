import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MULTIFD_CONFIGS, unpackFixture } from '../fixtures/multifd/lib.mjs';
import { MigstreamError } from '../src/codec/errors.js';
import { channelInflater, portableZlibInflater } from '../src/multifd/channel-codecs.js';
import { ChannelReader } from '../src/multifd/channel-reader.js';
import { decodeMultifd } from '../src/multifd/files.js';
import { MultifdRecoder } from '../src/multifd/recode.js';
import '../src/node/install.js';
import { inspectMultifd } from '../src/multifd/inspect.js';
import { decodeFile } from '../src/stream/files.js';
import { RamImage } from '../src/stream/ram-image.js';
import { requireBuiltCli, runCli } from './support/cli.js';
import { channelError } from './support/multifd.js';

requireBuiltCli();
const work = mkdtempSync(join(tmpdir(), 'migstream-multifd-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const unpacked = new Map<string, ReturnType<typeof unpackFixture>>();
function fixture(name: string) {
  let f = unpacked.get(name);
  if (!f) {
    f = unpackFixture(name, join(work, name));
    unpacked.set(name, f);
  }
  return f;
}

async function decodeRam(path: string): Promise<RamImage> {
  const ram = new RamImage();
  await decodeFile(path, (ev) => {
    if (ev.type === 'ram-blocks') ram.setBlocks(ev.blocks, ev.offset);
    else if (ev.type === 'page') ram.apply(ev);
  });
  return ram;
}

/** A recording directory of `name` with conn-N.s2d replaced by `bytes`. */
function damaged(name: string, n: number, edit: (b: Buffer) => Buffer): string {
  const dir = join(work, `${name}-damaged-${n}-${Math.random().toString(36).slice(2)}`);
  mkdirSync(dir);
  for (const f of readdirSync(fixture(name).rec)) copyFileSync(join(fixture(name).rec, f), join(dir, f));
  writeFileSync(join(dir, `conn-${n}.s2d`), edit(readFileSync(join(dir, `conn-${n}.s2d`))));
  return dir;
}

async function decodeError(path: string): Promise<MigstreamError> {
  try {
    await decodeRam(path);
  } catch (e) {
    expect(e).toBeInstanceOf(MigstreamError);
    return e as MigstreamError;
  }
  throw new Error('decoded without an error');
}

describe('real QEMU 7.2 multifd migrations (fixtures/multifd)', () => {
  for (const cfg of MULTIFD_CONFIGS) {
    it(`${cfg.name}: decoded pc.ram equals the destination's; counts reconcile with query-migrate`, async () => {
      const f = fixture(cfg.name);
      const ram = await decodeRam(f.rec);
      expect(Buffer.from(ram.blocks.get('pc.ram')!).equals(f.ram)).toBe(true);
      const m = (await inspectMultifd(f.rec))!;
      expect(m.channels).toHaveLength(cfg.channels);
      expect(m.channels.map((c) => c.channel).sort()).toEqual([...Array(cfg.channels).keys()]);
      for (const c of m.channels) expect(c.compression).toBe(cfg.compression);
      const q = f.source.ram;
      expect(m.pages - m.duplicates).toBe(q.normal);
      expect(m.multifdBytes).toBe(q['multifd-bytes']);
      // every EOS of the main channel met one SYNC packet per channel
      expect(m.channels.every((c) => c.syncPackets === m.epochs.length)).toBe(true);
      const zero = m.epochs.reduce((n, e) => n + e.mainPages, 0);
      expect(zero).toBe(q.duplicate);
      if (cfg.compression !== 'none') expect(m.wireBytes).toBeLessThan(m.multifdBytes / 3);
    });
  }

  it('STREAM --channel FILE … in any order extracts and verifies like the recording directory; inspect reports channels and epochs', () => {
    const f = fixture('zlib-4');
    const main = join(f.rec, 'conn-0.s2d');
    const chans = ['conn-3.s2d', 'conn-1.s2d', 'conn-4.s2d', 'conn-2.s2d'].flatMap((c) => ['--channel', join(f.rec, c)]);
    const out = join(work, 'zlib-4-extract');
    const x = runCli(['extract', main, ...chans, '--out', out]);
    expect([x.code, x.stderr]).toEqual([0, expect.not.stringMatching(/migstream:/)]);
    expect(readFileSync(join(out, 'pc.ram.bin')).equals(f.ram)).toBe(true);
    expect(runCli(['verify', f.rec, '--against', out]).code).toBe(0);
    const insp = runCli(['inspect', main, ...chans, '--json']);
    expect(insp.code).toBe(0);
    const j = JSON.parse(insp.stdout);
    expect(j.multifd.channels.map((c: { channel: number }) => c.channel)).toEqual([2, 0, 3, 1].map((_, i) => j.multifd.channels[i].channel));
    expect(j.multifd.multifdBytes).toBe(f.source.ram['multifd-bytes']);
    const text = runCli(['inspect', f.rec]).stdout;
    expect(text).toMatch(/multifd: 4 channels/);
    expect(text).toMatch(/never uses XBZRLE with multifd/);
  });

  it('a missing channel is an error, not silently missing pages', async () => {
    const f = fixture('zstd-4');
    const e = await decodeMultifd(
      join(f.rec, 'conn-0.s2d'),
      [1, 2, 3].map((n) => ({ path: join(f.rec, `conn-${n}.s2d`), label: `conn-${n}` })),
      () => {},
    ).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(MigstreamError);
    expect((e as MigstreamError).code).toBe('TRUNCATED');
    expect((e as MigstreamError).message).toMatch(/a channel is missing/);
  });

  it("QEMU's zlib channels: fflate (portable) and node:zlib inflate every packet to the same pages", () => {
    const f = fixture('zlib-4');
    for (const n of [1, 2, 3, 4]) {
      const bytes = readFileSync(join(f.rec, `conn-${n}.s2d`));
      const reader = new ChannelReader();
      reader.push(bytes);
      reader.end();
      const fflate = portableZlibInflater();
      const node = channelInflater('zlib');
      let packets = 0;
      for (let p = reader.next(); p; p = reader.next()) {
        if (p.header.normalPages === 0) continue;
        const payload = bytes.subarray(p.offset + p.header.headerBytes, p.offset + p.header.headerBytes + p.payloadBytes);
        const a = fflate.inflate(payload, p.pages.length);
        const b = node.inflate(payload, p.pages.length);
        expect(Buffer.from(a).equals(Buffer.from(p.pages)) && Buffer.from(b).equals(Buffer.from(p.pages))).toBe(true);
        packets++;
      }
      expect(packets).toBeGreaterThan(0);
    }
  });

  it('a brotli channel (our relay form) with a damaged payload is DECOMPRESS at its offset, not a crash', () => {
    const src = readFileSync(join(fixture('none-2').rec, 'conn-1.s2d'));
    const parts: Uint8Array[] = [];
    const r = new MultifdRecoder({ compression: 'brotli', level: 5 }, (c) => parts.push(c.slice()));
    r.push(src);
    r.end();
    const b = Buffer.concat(parts);
    let at = 64;
    while (b.readUInt32BE(at + 16) === 0) at += 1344;
    b.fill(0x5a, at + 1344 + 8, at + 1344 + 40);
    const e = channelError(b, 'brotli');
    expect([e.code, e.offset, e.context.channel]).toEqual(['DECOMPRESS', at + 1344, src[24]]);
  });

  describe('damaged channels: typed errors at exact offsets, naming the channel', () => {
    it('packet magic', async () => {
      // conn-1's first packet header starts after the 64-byte handshake
      const id = readFileSync(join(fixture('none-2').rec, 'conn-1.s2d'))[24]!;
      const e = await decodeError(
        damaged('none-2', 1, (b) => {
          b[64] ^= 0xff;
          return b;
        }),
      );
      expect([e.code, e.offset, e.context.channel]).toEqual(['BAD_MAGIC', 64, id]);
    });
    it('handshake magic: named by its connection', async () => {
      const e = await decodeError(damaged('none-2', 2, (b) => Buffer.concat([Buffer.from([0x11, 0x22, 0x33, 0x44, 0, 0, 0, 2]), b.subarray(8)])));
      expect([e.code, e.offset]).toEqual(['BAD_VERSION', 4]);
      expect(e.message).toMatch(/conn-2: multifd: received packet version 2 expected 1/);
    });
    it('pages_alloc beyond 128', async () => {
      const e = await decodeError(
        damaged('zlib-4', 3, (b) => {
          b.writeUInt32BE(129, 64 + 12);
          return b;
        }),
      );
      expect([e.code, e.offset]).toEqual(['BAD_RAM_RECORD', 76]);
      expect(e.message).toMatch(/multifd channel \d/);
    });
    it('a truncated channel', async () => {
      const rec = fixture('zstd-2').rec;
      const len = readFileSync(join(rec, 'conn-1.s2d')).length;
      const e = await decodeError(damaged('zstd-2', 1, (b) => b.subarray(0, len - 100)));
      expect(e.code).toBe('TRUNCATED');
      expect(e.offset).toBe(len - 100);
      expect(e.context.channel).toBe(readFileSync(join(rec, 'conn-1.s2d'))[24]);
    });
    for (const name of ['zlib-4', 'zstd-2']) {
      it(`${name}: a damaged compressed payload is DECOMPRESS at the payload`, async () => {
        const b0 = readFileSync(join(fixture(name).rec, 'conn-1.s2d'));
        // the first packet with pages: walk the headers (1344 bytes each, next_packet_size after them)
        let at = 64;
        for (;;) {
          const normal = b0.readUInt32BE(at + 16);
          if (normal > 0) break;
          at += 1344;
        }
        const payload = at + 1344;
        const e = await decodeError(
          damaged(name, 1, (b) => {
            b.fill(0xff, payload, payload + 16);
            return b;
          }),
        );
        expect([e.code, e.offset, e.context.channel]).toEqual(['DECOMPRESS', payload, b0[24]]);
      });
    }
    it('an unknown RAMBlock name', async () => {
      const b0 = readFileSync(join(fixture('none-2').rec, 'conn-1.s2d'));
      let at = 64;
      while (b0.readUInt32BE(at + 16) === 0) at += 1344;
      const e = await decodeError(
        damaged('none-2', 1, (b) => {
          b.write('nosuch\0', at + 64);
          return b;
        }),
      );
      expect([e.code, e.offset]).toEqual(['UNKNOWN_RAMBLOCK', at + 64]);
    });
  });
});
