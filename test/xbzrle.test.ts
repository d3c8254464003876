import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MigstreamError } from '../src/codec/errors.js';
import { prng } from './support/prng.js';
import { getUleb, MAX_RUN, putUleb, xbzrleDecode, xbzrleEncode, xbzrleEncodeJs } from '../src/xbzrle/index.js';

// ---------------------------------------------------------------------------------------------
// Plain references, written from QEMU's rules (migration/xbzrle.c, spec §4) one byte at a time.

/** xbzrle_encode_buffer with dlen = dst.length; runs over 0x3FFF give -1 (QEMU asserts). */
function referenceEncode(old: Uint8Array, cur: Uint8Array, dst: Uint8Array): number {
  const slen = cur.length;
  const dlen = dst.length;
  let i = 0;
  let d = 0;
  const put = (n: number) => {
    if (n < 0x80) dst[d++] = n;
    else {
      dst[d++] = (n & 0x7f) | 0x80;
      dst[d++] = n >> 7;
    }
  };
  while (i < slen) {
    if (d + 2 > dlen) return -1;
    let zrun = 0;
    while (i < slen && old[i] === cur[i]) {
      zrun++;
      i++;
    }
    if (zrun === slen) return 0;
    if (i === slen) return d;
    if (zrun > 0x3fff) return -1;
    put(zrun);
    if (d + 2 > dlen) return -1;
    const start = i;
    while (i < slen && old[i] !== cur[i]) i++;
    const nzrun = i - start;
    if (nzrun > 0x3fff) return -1;
    put(nzrun);
    if (d + nzrun > dlen) return -1;
    for (let k = 0; k < nzrun; k++) dst[d++] = cur[start + k]!;
  }
  return d;
}

/** xbzrle_decode_buffer: the new page, or null where QEMU returns -1. */
function referenceDecode(src: Uint8Array, page: Uint8Array): Uint8Array | null {
  const dst = page.slice();
  const uleb = (at: number): [number, number] | null => {
    if (src[at]! < 0x80) return [src[at]!, 1];
    if (src[at + 1]! & 0x80) return null;
    return [(src[at]! & 0x7f) | (src[at + 1]! << 7), 2];
  };
  let i = 0;
  let d = 0;
  while (i < src.length) {
    if (src.length - i < 2) return null;
    const z = uleb(i);
    if (z === null || (i !== 0 && z[0] === 0)) return null;
    i += z[1];
    d += z[0];
    if (d > dst.length) return null;
    if (src.length - i < 2) return null;
    const n = uleb(i);
    if (n === null || n[0] === 0) return null;
    i += n[1];
    if (d + n[0] > dst.length || i + n[0] > src.length) return null;
    for (let k = 0; k < n[0]; k++) dst[d++] = src[i++]!;
  }
  return dst;
}

// ---------------------------------------------------------------------------------------------
// Helpers

const bytes = (...b: number[]) => Uint8Array.from(b);

/** Byte equality with a short failure message (toEqual on 64 KiB arrays is slow). */
function expectSame(got: Uint8Array, want: Uint8Array, what = 'bytes'): void {
  let at = got.length === want.length ? -1 : Math.min(got.length, want.length);
  for (let i = 0; at < 0 && i < got.length; i++) if (got[i] !== want[i]) at = i;
  expect(at, `${what}: lengths ${got.length}/${want.length}, first difference at`).toBe(-1);
}

const encoders = [
  ['xbzrleEncode (wasm SIMD)', xbzrleEncode],
  ['xbzrleEncodeJs (portable)', xbzrleEncodeJs],
] as const;

/** Encodes with `encode` into a dst of `dlen` bytes; returns the result and the encoding. */
function run(encode: typeof xbzrleEncode, old: Uint8Array, cur: Uint8Array, dlen = cur.length) {
  const dst = new Uint8Array(dlen);
  const n = encode(old, cur, dst);
  return { n, enc: n > 0 ? dst.slice(0, n) : new Uint8Array(0) };
}

function decodeError(src: Uint8Array, pageSize: number, base = 1000): MigstreamError {
  try {
    xbzrleDecode(src, new Uint8Array(pageSize), base);
  } catch (e) {
    expect(e).toBeInstanceOf(MigstreamError);
    return e as MigstreamError;
  }
  throw new Error('xbzrleDecode accepted input QEMU rejects');
}

/**
 * A page pair from a few parameters: random old content (or zeros), and `changes` bursts of
 * up to `burst` changed bytes at random places, each byte changed with probability `density`.
 */
function pagePair(size: number, seed: number, changes: number, burst: number, density: number, zeros: boolean) {
  const rand = prng(seed);
  const old = new Uint8Array(size);
  if (!zeros) for (let i = 0; i < size; i++) old[i] = (rand() * 256) | 0;
  const cur = old.slice();
  for (let c = 0; c < changes; c++) {
    const at = (rand() * size) | 0;
    const len = 1 + ((rand() * burst) | 0);
    for (let j = at; j < Math.min(size, at + len); j++) {
      if (rand() < density) cur[j] = cur[j]! ^ (1 + ((rand() * 255) | 0));
    }
  }
  return { old, cur };
}

const pairArb = fc
  .record({
    size: fc.oneof(fc.integer({ min: 1, max: 512 }), fc.integer({ min: 1, max: 8192 })).map((w) => w * 8),
    seed: fc.integer(),
    changes: fc.integer({ min: 0, max: 300 }),
    burst: fc.constantFrom(1, 2, 4, 7, 16, 64, 200, 5000, 20000),
    density: fc.constantFrom(1, 0.9, 0.5, 0.1),
    zeros: fc.boolean(),
  })
  .map((p) => ({ ...p, ...pagePair(p.size, p.seed, p.changes, p.burst, p.density, p.zeros) }));

// ---------------------------------------------------------------------------------------------

describe('QEMU docs/xbzrle.txt example', () => {
  // 1001 zero bytes, 21 bytes of data, 3074 zero bytes; encoded length 24.
  const old = new Uint8Array(4096);
  const cur = new Uint8Array(4096);
  old.set([0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x68, 0x00, 0x00, 0x6b, 0x00, 0x6d], 1001);
  cur.set([0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x68, 0x00, 0x00, 0x67, 0x00, 0x69], 1001);
  const expected = bytes(
    0xe9,
    0x07,
    0x0f,
    0x01,
    0x02,
    0x03,
    0x04,
    0x05,
    0x06,
    0x07,
    0x08,
    0x09,
    0x0a,
    0x0b,
    0x0c,
    0x0d,
    0x0e,
    0x0f,
    0x03,
    0x01,
    0x67,
    0x01,
    0x01,
    0x69,
  );

  for (const [name, encode] of encoders) {
    it(`${name} produces the documented 24 bytes`, () => {
      const { n, enc } = run(encode, old, cur);
      expect(n).toBe(24);
      expect([...enc]).toEqual([...expected]);
    });
  }

  it('decodes back to the new buffer, covering up to the last changed byte', () => {
    const page = old.slice();
    expect(xbzrleDecode(expected, page)).toBe(1001 + 21);
    expectSame(page, cur);
  });
});

describe('decoder rejects what xbzrle_decode_buffer rejects', () => {
  const cases: [string, number[], number, number][] = [
    // [what, encoded bytes, page size, offset of the complaint]
    ['a single byte where a zero-run length is expected', [0x05], 16, 0],
    ['one byte left for the next zero-run length', [0x00, 0x01, 0xaa, 0x01], 16, 3],
    ['a 3-byte ULEB128 zero run', [0x80, 0x80, 0x01, 0x01, 0xaa], 16, 1],
    ['a 3-byte ULEB128 data run', [0x00, 0xff, 0x80, 0x01], 16, 2],
    ['a zero run of 0 after the first pair', [0x00, 0x01, 0xaa, 0x00, 0x01, 0xbb], 16, 3],
    ['a non-canonical zero run of 0 after the first pair', [0x00, 0x01, 0xaa, 0x80, 0x00, 0x01, 0xbb], 16, 4],
    ['a zero run past the end of the page', [0x11, 0x01, 0xaa], 16, 0],
    ['a zero run reaching the end, then data', [0x10, 0x01, 0xaa], 16, 1],
    ['nothing after a zero run', [0x00, 0x01, 0xaa, 0x82, 0x00], 16, 5],
    ['only a 1-byte data-run length left (QEMU wants 2 bytes)', [0x00, 0x01, 0xaa, 0x01, 0x01], 16, 4],
    ['a data run of 0', [0x01, 0x00, 0xaa], 16, 1],
    ['a data run of 0 written as 80 00', [0x01, 0x80, 0x00, 0xaa], 16, 2],
    ['a data run past the end of the input', [0x00, 0x05, 0xaa, 0xbb], 16, 1],
    ['a data run past the end of the page', [0x02, 0x03, 0x01, 0x02, 0x03], 4, 1],
  ];
  for (const [what, src, pageSize, at] of cases) {
    it(what, () => {
      const base = 7000;
      const e = decodeError(bytes(...src), pageSize, base);
      expect(e.code).toBe('XBZRLE_DECODE');
      expect(e.offset).toBe(base + at);
      expect(e.message).toContain('Failed to load XBZRLE page - decode error!');
      expect(referenceDecode(bytes(...src), new Uint8Array(pageSize))).toBeNull();
    });
  }

  it('accepts what QEMU accepts at the edges', () => {
    const page = new Uint8Array(16);
    expect(xbzrleDecode(new Uint8Array(0), page)).toBe(0); // elen 0: nothing changes
    expect(page).toEqual(new Uint8Array(16));
    expect(xbzrleDecode(bytes(0x80, 0x00, 0x01, 0xaa), page)).toBe(1); // non-canonical 0 first
    expect(page[0]).toBe(0xaa);
    expect(xbzrleDecode(bytes(0x0f, 0x01, 0xbb), page)).toBe(16); // data run ending at the page end
    expect(page[15]).toBe(0xbb);
    expect(xbzrleDecode(bytes(0x00, 0x81, 0x00, 0xcc), new Uint8Array(16))).toBe(1); // 2-byte form of 1
  });
});

describe('encoder overflow: -1 exactly where QEMU gives up', () => {
  const P = 4096;
  /** A page pair whose bytes [from, to) differ. */
  const diffRange = (from: number, to: number) => {
    const old = new Uint8Array(P);
    const cur = new Uint8Array(P);
    cur.fill(0x5a, from, to);
    return { old, cur };
  };
  /** The result of encoding a page whose bytes [from, to) changed. */
  const lengthFor = (encode: typeof xbzrleEncode, from: number, to: number) => {
    const { old, cur } = diffRange(from, to);
    return run(encode, old, cur).n;
  };

  for (const [name, encode] of encoders) {
    it(`${name}: an encoding of exactly 4096 bytes is valid`, () => {
      // zrun 3 (1 byte), nzrun 4093 (2 bytes), 4093 data bytes.
      const { old, cur } = diffRange(3, P);
      const { n, enc } = run(encode, old, cur);
      expect(n).toBe(P);
      expect([...enc.subarray(0, 3)]).toEqual([0x03, 0xfd, 0x1f]);
      const page = old.slice();
      xbzrleDecode(enc, page);
      expectSame(page, cur);
    });

    it(`${name}: d = 4095 after a data run with only unchanged bytes left gives -1`, () => {
      // zrun 0, nzrun 4092 (2 bytes), data: d = 4095; the loop-top check d + 2 > 4096 fires.
      expect(lengthFor(encode, 0, 4092)).toBe(-1);
      // Same with d = 4096 exactly (zrun 1, nzrun 4093) and two unchanged bytes left.
      expect(lengthFor(encode, 1, 4094)).toBe(-1);
      // One byte shorter: d = 4094 passes the check, the trailing zero run is dropped.
      expect(lengthFor(encode, 0, 4091)).toBe(4094);
    });

    it(`${name}: the data-run check is d + nzrun > dlen`, () => {
      // zrun 0, nzrun 4094 (2 bytes): 3 + 4094 = 4097 > 4096.
      expect(lengthFor(encode, 0, 4094)).toBe(-1);
      // A fully rewritten page cannot fit either.
      expect(lengthFor(encode, 0, P)).toBe(-1);
    });

    it(`${name}: identical pages encode to 0, even with a 2-byte dst, but not with less`, () => {
      const page = Uint8Array.from({ length: 64 }, (_, i) => i);
      expect(run(encode, page, page.slice()).n).toBe(0);
      expect(run(encode, page, page.slice(), 2).n).toBe(0);
      expect(run(encode, page, page.slice(), 1).n).toBe(-1); // the loop-top check comes first
      expect(run(encode, new Uint8Array(0), new Uint8Array(0), 0).n).toBe(0);
    });

    it(`${name}: small dst lengths hit each check exactly like the reference`, () => {
      const rand = prng(42);
      for (let t = 0; t < 300; t++) {
        const size = 8 * (1 + ((rand() * 8) | 0));
        const { old, cur } = pagePair(size, t, 1 + ((rand() * 6) | 0), 1 + ((rand() * 9) | 0), 0.8, t % 2 === 0);
        for (let dlen = 0; dlen <= size + 4; dlen++) {
          const ref = new Uint8Array(dlen);
          const want = referenceEncode(old, cur, ref);
          const got = run(encode, old, cur, dlen);
          expect(got.n, `size ${size} dlen ${dlen} case ${t}`).toBe(want);
          if (want > 0) expectSame(got.enc, ref.subarray(0, want));
        }
      }
    });

    it(`${name}: a run longer than 0x3FFF gives -1 (QEMU would assert)`, () => {
      const old = new Uint8Array(65536);
      const cur = old.slice();
      cur[20000] = 1; // zero run of 20000 first
      expect(run(encode, old, cur).n).toBe(-1);
      const cur2 = old.slice();
      cur2[0x3fff] = 1; // a zero run of exactly 0x3FFF is fine
      const { n, enc } = run(encode, old, cur2);
      expect([...enc]).toEqual([0xff, 0x7f, 0x01, 0x01]);
      expect(n).toBe(4);
    });

    it(`${name}: works on unaligned views and lengths that are not multiples of 8`, () => {
      const rand = prng(7);
      for (let t = 0; t < 200; t++) {
        const size = 1 + ((rand() * 300) | 0);
        const { old, cur } = pagePair(size, t, 1 + ((rand() * 10) | 0), 1 + ((rand() * 40) | 0), 0.7, false);
        const oa = new Uint8Array(size + 16);
        const ca = new Uint8Array(size + 16);
        const oo = (rand() * 8) | 0;
        const co = (rand() * 8) | 0;
        oa.set(old, oo);
        ca.set(cur, co);
        const dst = new Uint8Array(size + 3).subarray(3);
        const ref = new Uint8Array(size);
        const want = referenceEncode(old, cur, ref);
        expect(encode(oa.subarray(oo, oo + size), ca.subarray(co, co + size), dst)).toBe(want);
        if (want > 0) expectSame(dst.subarray(0, want), ref.subarray(0, want));
      }
    });
  }

  it('rejects pages of different lengths', () => {
    expect(() => xbzrleEncode(new Uint8Array(8), new Uint8Array(16), new Uint8Array(16))).toThrow(RangeError);
  });

  it('keeps working when page and dst sizes change between calls', () => {
    for (const size of [4096, 64, 65536, 8, 4096, 100]) {
      const { old, cur } = pagePair(size, size, 5, 3, 1, false);
      for (const dlen of [size, size >> 1, 3]) {
        const ref = new Uint8Array(dlen);
        const want = referenceEncode(old, cur, ref);
        const got = run(xbzrleEncode, old, cur, dlen);
        expect(got.n).toBe(want);
        if (want > 0) expectSame(got.enc, ref.subarray(0, want));
      }
    }
  });
});

describe('ULEB128 helpers', () => {
  it('write and read 1- and 2-byte forms', () => {
    const buf = new Uint8Array(2);
    for (const n of [0, 1, 0x7f, 0x80, 1001, MAX_RUN]) {
      const len = putUleb(buf, 0, n);
      expect(len).toBe(n < 0x80 ? 1 : 2);
      const v = getUleb(buf, 0);
      expect(v & 0xffff).toBe(n);
      expect(v >>> 16).toBe(len);
    }
    expect([...buf.subarray(0, putUleb(buf, 0, 1001))]).toEqual([0xe9, 0x07]);
    expect(getUleb(bytes(0x80, 0x80), 0)).toBe(-1);
    expect(getUleb(bytes(0x80, 0x00), 0)).toBe(2 << 16); // non-canonical 0 is a value
  });
});

describe('against the plain references', () => {
  for (const [name, encode] of encoders) {
    it(`${name} equals the byte-at-a-time encoder on random pages`, () => {
      fc.assert(
        fc.property(pairArb, ({ old, cur }) => {
          const ref = new Uint8Array(cur.length);
          const want = referenceEncode(old, cur, ref);
          const got = run(encode, old, cur);
          expect(got.n).toBe(want);
          if (want > 0) expectSame(got.enc, ref.subarray(0, want));
        }),
        { numRuns: 300 },
      );
    });

    it(`${name}: decode(encode(old, new), old) == new whenever it fits`, () => {
      let fitted = 0;
      fc.assert(
        fc.property(pairArb, ({ old, cur }) => {
          const { n, enc } = run(encode, old, cur);
          if (n < 0) return;
          fitted++;
          const page = old.slice();
          xbzrleDecode(enc, page);
          expectSame(page, cur, 'decoded page');
          if (n === 0) expectSame(cur, old, 'unchanged page');
        }),
        { numRuns: 300 },
      );
      expect(fitted).toBeGreaterThan(150); // the generator keeps most cases under the limit
    });

    it(`${name} matches the reference on arbitrary small pages`, () => {
      fc.assert(
        fc.property(
          fc
            .integer({ min: 0, max: 200 })
            .chain((len) =>
              fc.tuple(
                fc.uint8Array({ minLength: len, maxLength: len }),
                fc.uint8Array({ minLength: len, maxLength: len }),
                fc.integer({ min: 0, max: len + 8 }),
              ),
            ),
          ([old, raw, dlen]) => {
            // Mix: keep about half of old's bytes so both run kinds appear.
            const cur = raw.map((b, i) => (b & 1 ? old[i]! : b));
            const ref = new Uint8Array(dlen);
            const want = referenceEncode(old, cur, ref);
            const got = run(encode, old, cur, dlen);
            expect(got.n).toBe(want);
            if (want > 0) expectSame(got.enc, ref.subarray(0, want));
          },
        ),
        { numRuns: 500 },
      );
    });
  }

  it('the decoder agrees with the reference on arbitrary input, and throws only MigstreamError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.integer({ min: 0, max: 300 }), (src, pageSize) => {
        // Bias towards plausible encodings: small run lengths.
        const input = src.map((b, i) => (i % 3 === 2 ? b : b & 0x8f));
        const page = Uint8Array.from({ length: pageSize }, (_, i) => i * 7);
        const want = referenceDecode(input, page);
        const got = page.slice();
        let ok = true;
        try {
          xbzrleDecode(input, got);
        } catch (e) {
          expect(e).toBeInstanceOf(MigstreamError);
          ok = false;
        }
        expect(ok).toBe(want !== null);
        if (want) expectSame(got, want);
      }),
      { numRuns: 2000 },
    );
  });

  // Real page sizes: QEMU's 4 KiB target pages and 64 KiB host pages, whole deltas of realistic
  // writes, as the fixtures carry them (the properties above draw mostly other sizes).
  const realPairArb = fc
    .record({
      size: fc.constantFrom(4096, 4096, 4096, 8192, 65536),
      seed: fc.integer(),
      changes: fc.integer({ min: 0, max: 400 }),
      burst: fc.constantFrom(1, 3, 8, 33, 130, 700, 4096),
      density: fc.constantFrom(1, 0.9, 0.5, 0.1),
      zeros: fc.boolean(),
    })
    .map((p) => ({ ...p, ...pagePair(p.size, p.seed, p.changes, p.burst, p.density, p.zeros) }));

  for (const [name, encode] of encoders) {
    it(`${name} on 4 KiB and 64 KiB pages: the reference's bytes, and decode(encode) == new`, () => {
      let fitted = 0;
      fc.assert(
        fc.property(realPairArb, ({ old, cur }) => {
          const ref = new Uint8Array(cur.length);
          const want = referenceEncode(old, cur, ref);
          const got = run(encode, old, cur);
          expect(got.n).toBe(want);
          if (want < 0) return;
          fitted++;
          expectSame(got.enc, ref.subarray(0, want));
          const page = old.slice();
          expect(xbzrleDecode(got.enc, page)).toBeLessThanOrEqual(cur.length);
          expectSame(page, cur, 'decoded page');
          expectSame(referenceDecode(got.enc, old)!, cur, 'reference-decoded page');
        }),
        { numRuns: 300 },
      );
      expect(fitted).toBeGreaterThan(100);
    });
  }

  it('the decoder agrees with the reference on 4 KiB and 64 KiB deltas, whole, damaged and cut', () => {
    let accepted = 0;
    let rejected = 0;
    fc.assert(
      fc.property(realPairArb, fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 3 }), fc.option(fc.nat()), ({ old, cur }, flips, cut) => {
        const dst = new Uint8Array(cur.length);
        const n = referenceEncode(old, cur, dst);
        if (n <= 0) return;
        let enc = dst.slice(0, n);
        for (const [at, v] of flips) enc[at % n] = v;
        if (cut !== null) enc = enc.subarray(0, cut % (n + 1));
        const want = referenceDecode(enc, old);
        const got = old.slice();
        let ok = true;
        try {
          xbzrleDecode(enc, got);
        } catch (e) {
          expect(e).toBeInstanceOf(MigstreamError);
          ok = false;
        }
        expect(ok, 'accepts exactly what QEMU accepts').toBe(want !== null);
        if (want) {
          accepted++;
          expectSame(got, want);
        } else rejected++;
      }),
      { numRuns: 1000 },
    );
    expect(accepted).toBeGreaterThan(100);
    expect(rejected).toBeGreaterThan(50);
  });

  it('the decoder copies runs of every length correctly (byte, word and native paths)', () => {
    for (let n = 1; n <= 700; n += n < 40 ? 1 : 37) {
      const page = new Uint8Array(2048);
      const data = Uint8Array.from({ length: n }, (_, i) => (i * 13 + 1) & 0xff);
      for (const z of [0, 1, 3, 130]) {
        const src = new Uint8Array(4 + n);
        let at = putUleb(src, 0, z);
        at += putUleb(src, at, n);
        src.set(data, at);
        const enc = src.subarray(0, at + n);
        const want = referenceDecode(enc, page)!;
        const got = page.slice();
        expect(xbzrleDecode(enc, got)).toBe(z + n);
        expectSame(got, want);
      }
    }
  });
});
