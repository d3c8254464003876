import { describe, expect, it } from 'vitest';
import { loadFixture } from '../fixtures/qemu/lib.mjs';
import { StreamDecoder } from '../src/stream/decoder.js';
import { encodeDumps, readTemplate } from '../src/stream/dump-encoder.js';
import { concatChunks, Transcoder, transcodeBytes } from '../src/stream/transcode.js';
import { decodeRam, sameBytes } from './support/build.js';
import { dumpSeries } from './support/dumps.js';
import { fixtureNames } from './support/fixtures.js';

function decode(stream: Uint8Array) {
  const { ram, stats } = decodeRam(stream);
  return { ram, summary: stats.summary };
}

function diffPages(a: Uint8Array, b: Uint8Array): number {
  let n = 0;
  for (let p = 0; p < a.length; p += 4096) if (!sameBytes(a.subarray(p, p + 4096), b.subarray(p, p + 4096))) n++;
  return n;
}

describe('encodeDumps', () => {
  const truth = loadFixture('plain').ram;
  const dumps = dumpSeries(new Uint8Array(truth), 4);

  for (const xbzrle of [undefined, { cacheBytes: 16 << 20, policy: 'lru' as const }, { cacheBytes: 16 << 20, policy: 'qemu' as const }]) {
    it(`sends every page, then only the changed ones (${xbzrle ? `xbzrle ${xbzrle.policy}` : 'plain'})`, () => {
      const parts: Uint8Array[] = [];
      const r = encodeDumps([{ idstr: 'pc.ram', dumps }], (c) => parts.push(c), { xbzrle });
      const stream = concatChunks(parts);
      const { ram, summary } = decode(stream);
      expect(sameBytes(ram.blocks.get('pc.ram')!, dumps.at(-1)!)).toBe(true);
      expect(r.iterations[0]!.pagesSent).toBe(truth.length / 4096);
      for (let i = 1; i < dumps.length; i++) expect(r.iterations[i]!.pagesSent).toBe(diffPages(dumps[i - 1]!, dumps[i]!));
      const its = summary.iterations.slice(1); // START carries MEM_SIZE only
      expect(its.map((it) => it.xbzrle.pages)).toEqual(r.iterations.map((it) => it.records.xbzrle));
      if (xbzrle) {
        // the first re-send of a page is a cache miss, the next ones are deltas (one page overflows)
        expect(r.iterations[1]!.records.xbzrle).toBe(0);
        expect(r.iterations[2]!.records.xbzrle).toBeGreaterThan(200);
        expect(r.xbzrle[2]!.overflow + r.xbzrle[3]!.overflow).toBeGreaterThan(0);
      } else {
        expect(summary.totals.xbzrle.pages).toBe(0);
      }
    });
  }

  it('takes configuration, other RAMBlocks and device state from a template', () => {
    const tpl = loadFixture('plain').stream;
    const template = readTemplate(tpl);
    const parts: Uint8Array[] = [];
    encodeDumps([{ idstr: 'pc.ram', dumps }], (c) => parts.push(c), { template });
    const stream = concatChunks(parts);
    const a = decode(stream);
    const b = decode(tpl);
    expect(sameBytes(a.ram.blocks.get('pc.ram')!, dumps.at(-1)!)).toBe(true);
    for (const [id, img] of b.ram.blocks) if (id !== 'pc.ram') expect(sameBytes(a.ram.blocks.get(id)!, img), id).toBe(true);
    const shape = (s: typeof a.summary) => s.devices?.map((d) => [d.idstr, d.instanceId, d.versionId, d.size]);
    expect(shape(a.summary)).toEqual(shape(b.summary));
    expect(a.summary.machine).toBe('pc-i440fx-7.2');
  });
});

describe('transcode --xbzrle', () => {
  it("reproduces QEMU's own xbzrle stream byte for byte with the QEMU cache model", () => {
    const fx = loadFixture('xbzrle-hit');
    const parts: Uint8Array[] = [];
    const t = new Transcoder((c) => parts.push(c), { xbzrle: { cacheBytes: 16 << 20, policy: 'qemu' } });
    const d = new StreamDecoder(t.handle);
    d.push(fx.stream);
    d.end();
    expect(sameBytes(concatChunks(parts), fx.stream)).toBe(true);
  });

  it.each(fixtureNames())('%s: decodes to the same RAM, and is smaller than plain where pages are re-sent', (name) => {
    const fx = loadFixture(name);
    const plain = transcodeBytes(fx.stream);
    const x = transcodeBytes(fx.stream, { xbzrle: { cacheBytes: 16 << 20 } });
    const a = decode(plain);
    const b = decode(x);
    for (const [id, img] of a.ram.blocks) expect(sameBytes(b.ram.blocks.get(id)!, img), id).toBe(true);
    if (a.summary.iterations.reduce((n, it) => n + it.normal.pages, 0) > 1700) {
      expect(x.length).toBeLessThan(plain.length);
      expect(b.summary.totals.xbzrle.pages).toBeGreaterThan(0);
    }
  });
});
