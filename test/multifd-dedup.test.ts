import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { unpackFixture } from '../fixtures/multifd/lib.mjs';
import { channelDeflater, channelInflater } from '../src/multifd/channel-codecs.js';
import { channelError } from './support/multifd.js';
import { DedupDeflater, DedupInflater } from '../src/multifd/page-dedup.js';
import { MultifdRecoder, type MultifdRelayOptions } from '../src/multifd/recode.js';
import '../src/node/install.js';

const work = mkdtempSync(join(tmpdir(), 'migstream-multifd-dedup-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const P = 4096;
/** A page filled with a byte pattern of its own (two differ in every word). */
const page = (seed: number) => Uint8Array.from({ length: P }, (_, i) => (seed * 131 + i * 7) & 0xff);
const packet = (...seeds: number[]) => {
  const b = new Uint8Array(seeds.length * P);
  seeds.forEach((s, k) => b.set(page(s), k * P));
  return b;
};
/** The references a payload carries: [k, seq] pairs. */
const refs = (payload: Uint8Array) => {
  const v = new DataView(payload.buffer, payload.byteOffset, payload.length);
  return Array.from({ length: v.getUint32(0) }, (_, i) => [v.getUint32(4 + 8 * i), v.getUint32(8 + 8 * i)]);
};

function recode(bytes: Uint8Array, o: MultifdRelayOptions, step = 65536): Buffer {
  const out: Uint8Array[] = [];
  const r = new MultifdRecoder(o, (c) => out.push(c.slice()));
  for (let at = 0; at < bytes.length; at += step) r.push(bytes.subarray(at, at + step));
  r.end();
  return Buffer.concat(out);
}

describe('zstd-dedup: repeated pages as references between two relays', () => {
  it('a page already sent (in an earlier packet or earlier in the same one) becomes a reference; the pages come back exact', () => {
    const d = new DedupDeflater(channelDeflater('zstd', 1));
    const i = new DedupInflater(channelInflater('zstd'));
    const packets = [packet(1, 2, 1, 3), packet(2, 4, 3, 3), packet(5, 1)];
    const payloads = packets.map((p) => d.deflate(p));
    // distinct pages are numbered 0, 1, 2 … as sent: 1→0, 2→1, 3→2, 4→3, 5→4
    expect(payloads.map(refs)).toEqual([
      [[2, 0]],
      [
        [0, 1],
        [2, 2],
        [3, 2],
      ],
      [[1, 0]],
    ]);
    payloads.forEach((p, k) => expect(Buffer.from(i.inflate(p, packets[k]!.length)).equals(Buffer.from(packets[k]!))).toBe(true));
  });

  it('only the last `window` distinct pages are referenced (both ends drop the same ones)', () => {
    const d = new DedupDeflater(channelDeflater('zstd', 1), 2);
    const i = new DedupInflater(channelInflater('zstd'), 2);
    const packets = [packet(1, 2, 3), packet(1, 3)]; // page 1 (seq 0) left the window when page 3 (seq 2) came
    const payloads = packets.map((p) => d.deflate(p));
    expect(payloads.map(refs)).toEqual([[], [[1, 2]]]);
    payloads.forEach((p, k) => expect(Buffer.from(i.inflate(p, packets[k]!.length)).equals(Buffer.from(packets[k]!))).toBe(true));
  });

  it('a hash match with different bytes is not a reference', () => {
    const d = new DedupDeflater(channelDeflater('zstd', 1));
    const a = page(9);
    const b = a.slice();
    b[100] ^= 1;
    const p = new Uint8Array(2 * P);
    p.set(a);
    p.set(b, P);
    expect(refs(d.deflate(p))).toEqual([]);
  });

  it('a reference to a page the channel does not hold, out of order, or past the packet: an error naming the payload byte', () => {
    const cases: [(v: DataView) => void, RegExp][] = [
      [(v) => v.setUint32(8, 7), /reference 0 \(at payload byte 8\) names distinct page 7; this channel holds 0\.\.2/],
      [(v) => v.setUint32(4, 9), /reference 0 \(at payload byte 4\) names page 9, not a later page of the 3/],
      [(v) => v.setUint32(0, 4), /4 references in a packet of 3 pages/],
    ];
    for (const [edit, message] of cases) {
      const d = new DedupDeflater(channelDeflater('zstd', 1));
      const i = new DedupInflater(channelInflater('zstd'));
      i.inflate(d.deflate(packet(1, 2)), 2 * P);
      const bad = d.deflate(packet(3, 1, 4));
      edit(new DataView(bad.buffer, bad.byteOffset, bad.length));
      expect(() => i.inflate(bad, 3 * P)).toThrow(message);
    }
  });

  for (const fixture of ['none-2', 'zstd-2']) {
    it(`${fixture}: QEMU's channel → zstd-dedup → none is packet for packet what → none gives`, () => {
      const f = unpackFixture(fixture, join(work, fixture));
      for (const conn of ['conn-1.s2d', 'conn-2.s2d']) {
        const src = readFileSync(join(f.rec, conn));
        const between = recode(src, { compression: 'zstd-dedup', level: 1 }, 65536 + 7);
        expect(recode(between, { compression: 'none' }, 4093).equals(recode(src, { compression: 'none' }))).toBe(true);
      }
    });
  }

  it('a damaged reference in a relayed channel is DECOMPRESS at the payload, naming the channel', () => {
    const src = readFileSync(join(unpackFixture('none-2', join(work, 'none-2')).rec, 'conn-1.s2d'));
    const b = recode(src, { compression: 'zstd-dedup', level: 1 });
    // the first packet with a reference: its first one now names a page never sent
    let at = 64;
    while (b.readUInt32BE(at + 16) === 0 || b.readUInt32BE(at + 1344) === 0) at += 1344 + (b.readUInt32BE(at + 16) ? b.readUInt32BE(at + 20) : 0);
    b.writeUInt32BE(12345, at + 1344 + 8);
    const e = channelError(b, 'conn-1');
    expect([e.code, e.offset, e.context.channel]).toEqual(['DECOMPRESS', at + 1344, src[24]]);
    expect(e.message).toMatch(/at payload byte 8/);
    expect(e.message).toMatch(/names distinct page 12345/);
  });
});
