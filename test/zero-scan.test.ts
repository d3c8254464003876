import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isZeroPageJs } from '../src/codec/zero.js';
import { nodeZeroScan } from '../src/node/zero-scan.js';

describe("Node's zero-page scan", () => {
  it('answers as the portable scan for any length, alignment and single non-zero byte', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 9000 }),
        fc.integer({ min: 0, max: 7 }),
        fc.option(fc.nat()),
        fc.integer({ min: 1, max: 255 }),
        (n, shift, at, v) => {
          const backing = new Uint8Array(n + 8);
          const page = backing.subarray(shift, shift + n);
          if (at !== null && n > 0) page[at % n] = v;
          expect(nodeZeroScan(page)).toBe(isZeroPageJs(page));
          expect(nodeZeroScan(page)).toBe(at === null || n === 0);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('bytes outside the view do not count, and lengths can alternate', () => {
    const backing = new Uint8Array(3 * 4096).fill(1);
    backing.fill(0, 4096, 8192);
    expect(nodeZeroScan(backing.subarray(4096, 8192))).toBe(true);
    expect(nodeZeroScan(backing.subarray(4095, 8192))).toBe(false);
    expect(nodeZeroScan(backing.subarray(4096, 8193))).toBe(false);
    expect(nodeZeroScan(backing.subarray(5000, 5100))).toBe(true);
    expect(nodeZeroScan(backing.subarray(4096, 8192))).toBe(true);
  });
});
