import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HierarchicalBitmap, linearFindNext } from '../src/codec/hbitmap.js';

describe('HierarchicalBitmap', () => {
  it('finds exactly the set bits, in order, after any sets and clears', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 70000 }),
        fc.array(fc.tuple(fc.boolean(), fc.nat()), { maxLength: 300 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (size, ops, probes) => {
          const h = new HierarchicalBitmap(size);
          const model = new Set<number>();
          for (const [on, raw] of ops) {
            const i = raw % size;
            if (on) {
              h.set(i);
              model.add(i);
            } else {
              h.clear(i);
              model.delete(i);
            }
          }
          const sorted = [...model].sort((a, b) => a - b);
          expect([...h]).toEqual(sorted);
          expect(h.count).toBe(model.size);
          for (const p of probes) {
            const from = p % (size + 40);
            expect(h.findNext(from)).toBe(sorted.find((x) => x >= from) ?? -1);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('clearing an unset bit in a word whose bit 31 is set leaves the count alone (found by the property above)', () => {
    const b = new HierarchicalBitmap(13452);
    b.set(959); // bit 31 of word 29
    b.clear(928); // bit 0 of the same word, not set
    expect(b.count).toBe(1);
    expect(b.findNext(0)).toBe(959);
    b.clear(959);
    expect(b.count).toBe(0);
    expect(b.findNext(0)).toBe(-1);
  });

  it('agrees with a linear scan of the flat bitmap on a 1 TiB disk at 64 KiB chunks', () => {
    const size = 2 ** 40 / 2 ** 16; // 16 Mi chunks
    const h = new HierarchicalBitmap(size);
    const flat = new Uint32Array(size / 32);
    for (const i of [0, 31, 32, 1_000_003, 9_999_999, size - 1]) {
      h.set(i);
      flat[i >>> 5]! |= 1 << (i & 31);
    }
    const a: number[] = [];
    for (let i = h.findNext(0); i >= 0; i = h.findNext(i + 1)) a.push(i);
    const b: number[] = [];
    for (let i = linearFindNext(flat, size, 0); i >= 0; i = linearFindNext(flat, size, i + 1)) b.push(i);
    expect(a).toEqual([0, 31, 32, 1_000_003, 9_999_999, size - 1]);
    expect(b).toEqual(a);
  });
});
