import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { loadFixture } from '../fixtures/qemu/lib.mjs';
import { Lz4Compressor, lz4Bound, lz4DecompressInto } from '../src/codec/lz4-block.js';
import { adler32, fflateZlib } from '../src/codec/zlib-page.js';
import { isZeroPage } from '../src/codec/zero.js';
import { lz4WasmCompress, lz4WasmDecompress, lz4WasmDecompressBatch } from '../src/stream/lz4-wasm.js';
import { nodeZlib } from '../src/stream/zlib-node.js';
import { inflatePageNode } from '../src/stream/inflate.js';
import { plainError } from '../src/fuzz/targets.js';
import { sameBytes } from './support/build.js';
import { toolGate } from './support/tools.js';

const work = mkdtempSync(join(tmpdir(), 'migstream-codecs-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Non-zero pages of a real guest's RAM (the plain fixture's ground truth), plus a few synthetic shapes. */
function corpus(limit = 400): Uint8Array[] {
  const ram = new Uint8Array(loadFixture('plain').ram);
  const pages: Uint8Array[] = [];
  for (let o = 0; o < ram.length && pages.length < limit; o += 4096) {
    const p = ram.subarray(o, o + 4096);
    if (!isZeroPage(p)) pages.push(p);
  }
  let x = 0x12345678;
  const random = new Uint8Array(4096).map(() => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 24);
  const ramp = new Uint8Array(4096).map((_, i) => i & 0xff);
  const oneByte = new Uint8Array(4096);
  oneByte[4095] = 1;
  return [...pages, random, ramp, oneByte, new Uint8Array(4096).fill(0xaa)];
}

describe('zlib pages (QEMU COMPRESS_PAGE framing)', () => {
  const pages = corpus(200);

  it.each([0, 1, 6, 9])("level %i: node:zlib and fflate read each other, with zlib's header bytes", (level) => {
    for (const page of pages) {
      const a = nodeZlib.deflate(page, level);
      const b = fflateZlib.deflate(page, level);
      expect(a.subarray(0, 2)).toEqual(b.subarray(0, 2));
      expect(sameBytes(fflateZlib.inflate(a, 4096), page)).toBe(true);
      expect(sameBytes(nodeZlib.inflate(b, 4096), page)).toBe(true);
    }
  });

  it("node:zlib's reused deflate stream writes each page as a fresh deflateSync does, levels interleaved", () => {
    const sizes = [4096, 4096, 1, 0, 70000]; // a page, an odd length, nothing, more than the first output buffer holds
    let n = 0;
    for (const page of pages) {
      for (const level of [1, 9, 0, 6, 1]) {
        const input = n % 7 === 0 ? new Uint8Array(sizes[n % sizes.length]!).map((_, i) => (i * 31) ^ (i >>> 5)) : page;
        const fresh = deflateSync(input, { level, windowBits: 15, memLevel: 8 });
        expect(sameBytes(nodeZlib.deflate(input, level), fresh)).toBe(true);
        n++;
      }
    }
    const a = nodeZlib.deflate(pages[0]!, 1);
    const b = nodeZlib.deflate(pages[1]!, 1);
    expect(sameBytes(a, deflateSync(pages[0]!, { level: 1 }))).toBe(true); // each call returns its own bytes
    expect(sameBytes(b, deflateSync(pages[1]!, { level: 1 }))).toBe(true);
  });

  it('writes the header QEMU writes for each level (78 01 / 5e / 9c / da)', () => {
    const want = ['7801', '7801', '785e', '785e', '785e', '785e', '789c', '78da', '78da', '78da'];
    for (let level = 0; level <= 9; level++) {
      for (const z of [nodeZlib, fflateZlib]) expect(Buffer.from(z.deflate(pages[0]!, level).subarray(0, 2)).toString('hex')).toBe(want[level]);
    }
  });

  it("both inflaters reject what QEMU's inflate rejects, with a plain Error", () => {
    const page = pages[3]!;
    const good = deflateSync(page, { level: 1 });
    const badSum = Uint8Array.from(good);
    badSum[badSum.length - 1]! ^= 1;
    const cases: [string, Uint8Array, number][] = [
      ['truncated', good.subarray(0, good.length - 6), 4096],
      ['wrong Adler-32', badSum, 4096],
      ['raw deflate', deflateRawSync(page), 4096],
      ['gzip', gzipSync(page), 4096],
      ['more than a page', deflateSync(new Uint8Array(4097)), 4096],
      ['empty', new Uint8Array(0), 4096],
    ];
    const inflaters = [nodeZlib, fflateZlib, { name: 'inflatePageNode', inflate: inflatePageNode }];
    for (const [what, bytes, size] of cases) {
      for (const z of inflaters) {
        let thrown: unknown;
        try {
          z.inflate(bytes, size);
        } catch (e) {
          thrown = e;
        }
        // exactly Error: the decoder reports any codec throw as DECOMPRESS, so a RangeError would hide a bug
        expect(plainError(thrown), `${z.name}: ${what} threw ${String(thrown)}`).toBe(true);
      }
    }
    // a short page is fine (QEMU leaves the rest of the page as it was)
    for (const z of [nodeZlib, fflateZlib]) expect(z.inflate(deflateSync(new Uint8Array(100).fill(7)), 4096).length).toBe(100);
    // bytes after the zlib stream are ignored, as zlib's inflate stops at the stream end
    const trailing = new Uint8Array([...good, 1, 2, 3]);
    for (const z of [nodeZlib, fflateZlib]) expect(sameBytes(z.inflate(trailing, 4096), page)).toBe(true);
  });

  it("adler32 matches zlib's trailer", () => {
    for (const page of pages.slice(0, 20)) {
      const z = deflateSync(page);
      expect(adler32(page)).toBe(z.readUInt32BE(z.length - 4));
    }
  });

  it('fflate inflate: any input ends in bytes or an Error, never a crash', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(4000), (noise, cut) => {
        const base = deflateSync(pages[1]!);
        const mutated = Uint8Array.from(base.subarray(0, Math.min(cut, base.length)));
        for (let i = 0; i < noise.length && i < mutated.length; i++) mutated[(i * 7919) % mutated.length]! ^= noise[i]!;
        for (const z of [fflateZlib, nodeZlib]) {
          // the outcome is taken first, so an assertion below can never be caught as a decoder error
          let outcome: Uint8Array | Error;
          try {
            outcome = z.inflate(mutated, 4096);
          } catch (e) {
            outcome = e as Error;
          }
          if (outcome instanceof Uint8Array) expect(outcome.length).toBeLessThanOrEqual(4096);
          else expect(outcome.constructor).toBe(Error);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('LZ4 pages (migstream extension)', () => {
  const pages = corpus(400);

  it.each([1, 8, 16])('acceleration %i: round trip through both decoders', (acc) => {
    const c = new Lz4Compressor(acc);
    const out = new Uint8Array(4096);
    for (const page of pages) {
      const block = c.compress(page);
      expect(block.length).toBeLessThanOrEqual(lz4Bound(4096));
      lz4DecompressInto(block, out);
      expect(sameBytes(out, page)).toBe(true);
      expect(sameBytes(lz4WasmDecompress(block, 4096), page)).toBe(true);
    }
  });

  it('lz4_flex (lz4-wasm-nodejs) blocks decode with ours, per call and batched', () => {
    const blocks = pages.map((p) => lz4WasmCompress(p));
    const out = new Uint8Array(4096);
    blocks.forEach((b, i) => {
      lz4DecompressInto(b, out);
      expect(sameBytes(out, pages[i]!)).toBe(true);
    });
    const batch = new Uint8Array(blocks.length * 4096);
    expect(lz4WasmDecompressBatch(blocks, 4096, batch)).toBeUndefined();
    blocks.forEach((_, i) => expect(sameBytes(batch.subarray(i * 4096, (i + 1) * 4096), pages[i]!)).toBe(true));
  });

  it('higher acceleration trades ratio for speed: never smaller output on this corpus', () => {
    const size = (acc: number) => pages.reduce((n, p) => n + new Lz4Compressor(acc).compress(p).length, 0);
    expect(size(1)).toBeLessThanOrEqual(size(8));
    expect(size(8)).toBeLessThanOrEqual(size(16));
  });

  const lz4Cli = toolGate(['lz4', '--version'], 'the liblz4 byte-equality test');
  it.skipIf(!lz4Cli).each([1, 8, 16])('acceleration %i: the same bytes as liblz4 (the native lz4 tool, 4 KiB blocks)', (acc) => {
    const input = join(work, `pages-${acc}.bin`);
    const output = `${input}.lz4`;
    writeFileSync(input, Buffer.concat(pages.slice(0, 200)));
    // --fast=N is acceleration N+1 in lz4frame.c; -1 is acceleration 1
    const level = acc === 1 ? ['-1'] : [`--fast=${acc - 1}`];
    const r = spawnSync('lz4', ['-q', '-f', '-B4096', '-BI', '--no-frame-crc', ...level, input, output]);
    expect(r.status).toBe(0);
    const frame = readFileSync(output);
    const flg = frame[4]!;
    let at = 4 + 2 + (flg & 0x08 ? 8 : 0) + 1; // magic, FLG+BD, [content size], header checksum
    const c = new Lz4Compressor(acc);
    let compared = 0;
    for (const page of pages.slice(0, 200)) {
      const word = frame.readUInt32LE(at);
      at += 4;
      const size = word & 0x7fffffff;
      const ours = c.compress(page);
      if (word & 0x80000000)
        expect(ours.length).toBeGreaterThanOrEqual(4096); // liblz4 stored it: it didn't shrink
      else {
        expect(Buffer.from(ours).equals(frame.subarray(at, at + size))).toBe(true);
        compared++;
      }
      at += size;
    }
    expect(frame.readUInt32LE(at)).toBe(0); // end mark: every page accounted for
    expect(compared).toBeGreaterThan(100); // the rest were incompressible: liblz4 stored them raw
  });

  it('malformed blocks throw a plain Error from both decoders, never write past the page', () => {
    const block = new Lz4Compressor(1).compress(pages[5]!);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.nat(block.length), (noise, cut) => {
        const mutated = Uint8Array.from(block.subarray(0, Math.max(1, cut)));
        for (let i = 0; i < noise.length; i++) mutated[(i * 31) % mutated.length]! ^= noise[i]!;
        const out = new Uint8Array(4096);
        let ours = true;
        let failure: unknown;
        try {
          lz4DecompressInto(mutated, out);
        } catch (e) {
          ours = false;
          failure = e;
        }
        const batch = new Uint8Array(4096);
        const wasm = lz4WasmDecompressBatch([mutated], 4096, batch) === undefined;
        // both accept exactly the blocks that decode to a full page, and agree on the bytes
        if (!ours) expect((failure as Error).constructor).toBe(Error);
        expect(ours, 'our decoder and lz4_flex accept the same blocks').toBe(wasm);
        if (ours) expect(sameBytes(out, batch)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });
});
