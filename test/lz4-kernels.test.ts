import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { loadFixture } from '../fixtures/qemu/lib.mjs';
import {
  LZ4_KERNEL_MAX_FAST_PAGE,
  LZ4_KERNEL_MAX_PAGE,
  lz4KernelCompress,
  lz4KernelCompressBatch,
  lz4KernelCompressPages,
  lz4KernelCompressView,
  lz4KernelDecompressBatch,
  lz4KernelDecompressInto,
  lz4KernelDecompressPages,
} from '../src/codec/kernels/lz4-kernels.js';
import { Lz4Compressor, lz4DecompressInto } from '../src/codec/lz4-block.js';
import { isZeroPage } from '../src/codec/zero.js';
import { StreamDecoder } from '../src/index.js';
import { lz4WasmApi, lz4WasmCompress } from '../src/stream/lz4-wasm.js';
import { encoderCompressor, resolveSpec } from '../src/stream/page-codecs.js';
import { sameBytes } from './support/build.js';
import { toolGate } from './support/tools.js';

const cache = join(import.meta.dirname, '..', '.cache', 'line-rate');
const streamFile = existsSync(cache) ? readdirSync(cache).find((f) => /^linux-\d+-.*\.stream$/.test(f)) : undefined;
if (!streamFile) console.warn('skipping the 512 MiB guest-stream identity tests: no cached stream (node bench/line-rate.mjs captures it)');

/** The non-zero pages of the cached Linux-guest stream of bench/line-rate.mjs. */
function guestPages(): Uint8Array[] {
  const pages: Uint8Array[] = [];
  new StreamDecoder((ev) => {
    if (ev.type === 'page' && ev.kind === 'normal' && !isZeroPage(ev.data)) pages.push(ev.data.slice());
  }).push(new Uint8Array(readFileSync(join(cache, streamFile!))));
  return pages;
}

/** lz4-wasm-nodejs's own API (a 4-byte size prefix, then the block), the reference for the compressor. */
function flex(page: Uint8Array): Uint8Array {
  return lz4WasmApi.compress(page).subarray(4);
}

/** Pages with structure LZ4 finds: runs, repeated words and strings, small alphabets, random tails. */
const structuredPage = (size: number) =>
  fc
    .array(
      fc.oneof(
        fc.record({ kind: fc.constant('run' as const), byte: fc.integer({ min: 0, max: 255 }), n: fc.integer({ min: 1, max: 600 }) }),
        fc.record({ kind: fc.constant('bytes' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }) }),
        fc.record({ kind: fc.constant('alphabet' as const), seed: fc.integer(), n: fc.integer({ min: 1, max: 400 }), k: fc.integer({ min: 2, max: 6 }) }),
        fc.record({ kind: fc.constant('repeat' as const), back: fc.integer({ min: 1, max: 70000 }), n: fc.integer({ min: 1, max: 700 }) }),
      ),
      { minLength: 1, maxLength: 40 },
    )
    .map((parts) => {
      const page = new Uint8Array(size);
      let at = 0;
      for (const p of parts) {
        if (at >= size) break;
        if (p.kind === 'run') page.fill(p.byte, at, Math.min(size, at + p.n)), (at += p.n);
        else if (p.kind === 'bytes') for (const b of p.bytes) at < size && (page[at++] = b);
        else if (p.kind === 'alphabet') {
          let x = p.seed | 1;
          for (let i = 0; i < p.n && at < size; i++) (x = (x * 1103515245 + 12345) | 0), (page[at++] = 0x61 + ((x >>> 16) % p.k));
        } else if (at > 0) {
          const from = Math.max(0, at - p.back);
          for (let i = 0; i < p.n && at < size; i++) page[at++] = page[from + i]!;
        }
      }
      return page;
    });

describe('LZ4 compression kernel (lz4.c): the bytes of lz4_flex, as lz4-wasm-nodejs writes them', () => {
  it('every non-zero page of the plain fixture guest', () => {
    const ram = new Uint8Array(loadFixture('plain').ram);
    let n = 0;
    for (let o = 0; o < ram.length; o += 4096) {
      const p = ram.subarray(o, o + 4096);
      if (isZeroPage(p)) continue;
      expect(sameBytes(lz4KernelCompress(p), flex(p)), `page at ${o}`).toBe(true);
      n++;
    }
    expect(n).toBeGreaterThan(100);
  });

  it.skipIf(!streamFile)('every non-zero page of the cached Linux-guest stream (bench/line-rate.mjs), batched and per page', () => {
    const pages = guestPages();
    expect(pages.length).toBeGreaterThan(10000);
    for (let i = 0; i < pages.length; i += 256) {
      const batch = pages.slice(i, i + 256);
      const joined = new Uint8Array(batch.length * 4096);
      batch.forEach((p, j) => joined.set(p, j * 4096));
      const { data, sizes } = lz4KernelCompressPages(joined, 4096);
      let at = 0;
      batch.forEach((p, j) => {
        const ref = lz4WasmCompress(p);
        const block = data.subarray(at, at + sizes[j]!);
        at += sizes[j]!;
        if (!sameBytes(block, ref)) expect.fail(`page ${i + j}: kernel ${block.length} bytes, lz4_flex ${ref.length}`);
        if (j === 0 && !sameBytes(lz4KernelCompress(p), ref)) expect.fail(`page ${i + j} per page`);
      });
      expect(at).toBe(data.length);
      const out = new Uint8Array(joined.length);
      expect(lz4KernelDecompressPages(data, sizes, 4096, out)).toBeUndefined();
      expect(sameBytes(out, joined)).toBe(true);
    }
  });

  it('random and structured pages of every size up to 64 KiB (property)', () => {
    const sized = fc.integer({ min: 0, max: 5000 }).chain((n) => fc.oneof(fc.uint8Array({ minLength: n, maxLength: n }), structuredPage(n)));
    const big = fc.constantFrom(8192, 16384, 32768, LZ4_KERNEL_MAX_PAGE).chain((n) => structuredPage(n));
    fc.assert(
      fc.property(fc.oneof(sized, big), (page) => {
        const block = lz4KernelCompress(page);
        expect(sameBytes(block, flex(page))).toBe(true);
        expect(sameBytes(lz4KernelCompressView(page), block)).toBe(true);
        const back = new Uint8Array(page.length);
        lz4KernelDecompressInto(block, back);
        expect(sameBytes(back, page)).toBe(true);
      }),
      { numRuns: 600 },
    );
  });

  it('a batch writes the blocks back to back, the same as one page at a time', () => {
    fc.assert(
      fc.property(fc.array(structuredPage(4096), { minLength: 1, maxLength: 20 }), (pages) => {
        const joined = new Uint8Array(pages.length * 4096);
        pages.forEach((p, i) => joined.set(p, i * 4096));
        const blocks = lz4KernelCompressBatch(joined, 4096);
        expect(blocks.length).toBe(pages.length);
        blocks.forEach((b, i) => expect(sameBytes(b, flex(pages[i]!))).toBe(true));
      }),
      { numRuns: 50 },
    );
  });

  it("the encoder's view form writes the same bytes as its fresh form, for lz4_flex and the liblz4 port", () => {
    const ram = new Uint8Array(loadFixture('plain').ram);
    for (const spec of [
      resolveSpec({ codec: 'lz4', impl: 'node' }),
      resolveSpec({ codec: 'lz4', impl: 'node', acceleration: 8 }),
      resolveSpec({ codec: 'lz4', impl: 'portable' }),
    ]) {
      const c = encoderCompressor(spec);
      expect(c.compressView).toBeDefined();
      for (let o = 0; o < ram.length; o += 4096 * 7) {
        const p = ram.subarray(o, o + 4096);
        expect(sameBytes(c.compressView!(p), c.compress(p)), `${spec.acceleration}/${spec.impl} page at ${o}`).toBe(true);
      }
    }
  });

  it('refuses pages lz4_flex compresses with another table', () => {
    expect(() => lz4KernelCompress(new Uint8Array(65536))).toThrow(/at most 65534/);
  });
});

describe("LZ4 compression kernel (lz4.c), liblz4's algorithm: the bytes of Lz4Compressor ('migstream-lz4') and of liblz4", () => {
  const work = mkdtempSync(join(tmpdir(), 'migstream-lz4-kernels-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));
  const accelerations = [1, 2, 8, 16, 65537];

  it('every non-zero page of the plain fixture guest, at accelerations 1, 2, 8, 16 and 65537', () => {
    const ram = new Uint8Array(loadFixture('plain').ram);
    for (const acc of accelerations) {
      const c = new Lz4Compressor(acc);
      for (let o = 0; o < ram.length; o += 4096) {
        const p = ram.subarray(o, o + 4096);
        if (!isZeroPage(p) && !sameBytes(lz4KernelCompress(p, acc), c.compressView(p))) expect.fail(`acceleration ${acc}, page at ${o}`);
      }
    }
  });

  it('random and structured pages of every size up to 65547 bytes, any acceleration (property)', () => {
    const sized = fc.integer({ min: 0, max: 5000 }).chain((n) => fc.oneof(fc.uint8Array({ minLength: n, maxLength: n }), structuredPage(n)));
    const big = fc.constantFrom(8192, 32768, 65536, LZ4_KERNEL_MAX_FAST_PAGE).chain((n) => structuredPage(n));
    const acc = fc.oneof(fc.constantFrom(1, 2, 8, 16, 65537), fc.integer({ min: 1, max: 65537 }));
    fc.assert(
      fc.property(fc.oneof(sized, big), acc, (page, a) => {
        const block = lz4KernelCompress(page, a);
        expect(sameBytes(block, new Lz4Compressor(a).compress(page))).toBe(true);
        const back = new Uint8Array(page.length);
        lz4KernelDecompressInto(block, back);
        expect(sameBytes(back, page)).toBe(true);
      }),
      { numRuns: 400 },
    );
    expect(() => lz4KernelCompress(new Uint8Array(LZ4_KERNEL_MAX_FAST_PAGE + 1), 1)).toThrow(/at most 65547/);
    expect(() => lz4KernelCompress(new Uint8Array(100), 0)).toThrow(RangeError);
  });

  const lz4Cli = toolGate(['lz4', '--version'], "the kernel's liblz4 byte-equality test");
  it.skipIf(!lz4Cli || !streamFile).each([1, 8])(
    'acceleration %i: every non-zero page of the cached guest stream, batched, equals the native lz4 tool and Lz4Compressor',
    (acc) => {
      const pages = guestPages();
      const input = join(work, `pages-${acc}.bin`);
      const output = `${input}.lz4`;
      const joined = Buffer.concat(pages);
      writeFileSync(input, joined);
      const level = acc === 1 ? ['-1'] : [`--fast=${acc - 1}`]; // --fast=N is acceleration N+1 in lz4frame.c
      expect(spawnSync('lz4', ['-q', '-f', '-B4096', '-BI', '--no-frame-crc', ...level, input, output]).status).toBe(0);
      const frame = readFileSync(output);
      let at = 4 + 2 + (frame[4]! & 0x08 ? 8 : 0) + 1; // magic, FLG+BD, [content size], header checksum
      const c = new Lz4Compressor(acc);
      let compared = 0;
      for (let i = 0; i < pages.length; i += 256) {
        const batch = joined.subarray(i * 4096, Math.min(pages.length, i + 256) * 4096);
        const { data, sizes } = lz4KernelCompressPages(batch, 4096, acc);
        let from = 0;
        sizes.forEach((size, j) => {
          const ours = data.subarray(from, (from += size));
          if (!sameBytes(ours, c.compressView(pages[i + j]!))) expect.fail(`page ${i + j}: the kernel and Lz4Compressor differ`);
          const word = frame.readUInt32LE(at);
          at += 4;
          const stored = word & 0x7fffffff;
          if (word & 0x80000000) {
            if (ours.length < 4096) expect.fail(`page ${i + j}: liblz4 stored it raw, ours is ${ours.length} bytes`);
          } else {
            if (!sameBytes(ours, frame.subarray(at, at + stored))) expect.fail(`page ${i + j}: the kernel and liblz4 differ`);
            compared++;
          }
          at += stored;
        });
      }
      expect(frame.readUInt32LE(at)).toBe(0); // end mark: every page accounted for
      expect(compared).toBeGreaterThan(20000); // 25k of the 33,921 pages: liblz4 stores the rest raw (they do not shrink)
    },
  );
});

describe('LZ4 decompression kernel (lz4.c): bounds-checked, the same verdicts as the TypeScript decoder', () => {
  const pages = (() => {
    const ram = new Uint8Array(loadFixture('plain').ram);
    const out: Uint8Array[] = [];
    for (let o = 0; o < ram.length && out.length < 64; o += 4096) if (!isZeroPage(ram.subarray(o, o + 4096))) out.push(ram.subarray(o, o + 4096));
    return out;
  })();
  const blocks = pages.map((p) => lz4KernelCompress(p));

  /** Decodes with both; the kernel into the middle of a guarded buffer, whose guards must stay intact. */
  function both(block: Uint8Array, size: number) {
    let ts: string | undefined;
    const tsOut = new Uint8Array(size);
    try {
      lz4DecompressInto(block, tsOut);
    } catch (e) {
      ts = (e as Error).message;
    }
    const guarded = new Uint8Array(size + 64).fill(0xa5);
    const out = guarded.subarray(32, 32 + size);
    out.fill(0);
    let kernel: string | undefined;
    try {
      lz4KernelDecompressInto(block, out);
    } catch (e) {
      kernel = (e as Error).message;
    }
    const guards = [...guarded.subarray(0, 32), ...guarded.subarray(32 + size)];
    return { ts, kernel, same: ts !== undefined || sameBytes(out, tsOut), guards };
  }

  it('mutated, truncated and random blocks: the same accept/reject, message and bytes, nothing written outside the page (property)', () => {
    const mutated = fc
      .record({
        i: fc.integer({ min: 0, max: blocks.length - 1 }),
        edits: fc.array(fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }), { maxLength: 4 }),
        cut: fc.option(fc.nat()),
      })
      .map(({ i, edits, cut }) => {
        const b = blocks[i]!.slice();
        for (const e of edits) b[e.at % b.length] = e.byte;
        return cut === null ? b : b.subarray(0, cut % (b.length + 1));
      });
    fc.assert(
      fc.property(fc.oneof(mutated, fc.uint8Array({ maxLength: 300 })), fc.constantFrom(4096, 100, 16), (block, size) => {
        const r = both(block, size);
        expect(r.kernel).toBe(r.ts);
        expect(r.same).toBe(true);
        expect(r.guards.every((g) => g === 0xa5)).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });

  it('a batch names the first failing block and decodes the pages before it', () => {
    const bad = blocks[3]!.slice(0, blocks[3]!.length - 1);
    const list = [blocks[0]!, blocks[1]!, blocks[2]!, bad, blocks[4]!];
    const out = new Uint8Array(5 * 4096);
    const error = lz4KernelDecompressBatch(list, 4096, out);
    let ts = '';
    try {
      lz4DecompressInto(bad, new Uint8Array(4096));
    } catch (e) {
      ts = (e as Error).message;
    }
    expect(error).toEqual({ index: 3, message: ts });
    for (let i = 0; i < 3; i++) expect(sameBytes(out.subarray(i * 4096, (i + 1) * 4096), pages[i]!)).toBe(true);
    expect(isZeroPage(out.subarray(3 * 4096))).toBe(true);
  });

  it('hand-made hostile blocks end in the typed reasons', () => {
    const cases: [number[], RegExp][] = [
      [[], /ends before its last literals \(at 0\)/],
      [[0xf0], /literal length runs past the block/],
      [[0x50, 1, 2], /literals run past the block \(at 1\)/],
      [[0x10, 7, 0, 0], /match offset 0 points before the page \(at 2\)/],
      [[0x10, 7, 2, 0], /match offset 2 points before the page \(at 2\)/],
      [[0x10, 7, 1], /match offset runs past the block/],
      [[0x1f, 7, 1, 0], /match length runs past the block/],
      [[0x1f, 7, 1, 0, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 1, 0], /match runs past the 4096-byte page/],
      [[0x10, 7], /holds 1 bytes, expected a 4096-byte page/],
      [[0x10, 7, 1, 0, 0x00], /holds 5 bytes, expected a 4096-byte page/],
    ];
    for (const [bytes, re] of cases) {
      const r = both(new Uint8Array(bytes), 4096);
      expect(r.kernel, JSON.stringify(bytes)).toMatch(re);
      expect(r.kernel, JSON.stringify(bytes)).toBe(r.ts);
      expect(r.guards.every((g) => g === 0xa5)).toBe(true);
    }
  });
});

describe('the committed kernels module', () => {
  const clang = spawnSync('clang', ['--version'], { encoding: 'utf8' });
  const major = /clang version (\d+)/.exec(clang.stdout ?? '')?.[1];
  const reason = clang.status !== 0 ? 'clang is not installed' : major !== '14' ? `clang ${major} is not clang 14, which built it` : '';
  if (reason) console.warn(`skipping the kernels rebuild check: ${reason}`);
  it.skipIf(reason !== '')('is what clang 14 builds from the C sources (npm run build:kernels)', () => {
    const r = spawnSync(process.execPath, [join(import.meta.dirname, '..', 'src', 'codec', 'kernels', 'build.mjs'), '--check'], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
