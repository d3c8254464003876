/**
 * A hierarchical dirty bitmap: level 0 holds one bit per chunk, and each
 * level above holds one bit per non-zero word of the level below, so
 * findNext() skips empty stretches a word per level instead of scanning them:
 * O(levels) words per call on a sparse map. Words are 32 bits because JS
 * bitwise operators are (64-bit words would need BigInt arithmetic).
 */
export class HierarchicalBitmap {
  readonly size: number;
  private readonly levels: Uint32Array[];
  private setCount = 0;

  constructor(size: number) {
    this.size = size;
    const levels: Uint32Array[] = [];
    let bits = Math.max(1, size);
    do {
      const words = Math.ceil(bits / 32);
      levels.push(new Uint32Array(words));
      bits = words;
    } while (bits > 1);
    this.levels = levels;
  }

  /** Bits set. */
  get count(): number {
    return this.setCount;
  }

  get(i: number): boolean {
    return ((this.levels[0]![i >>> 5]! >>> (i & 31)) & 1) === 1;
  }

  set(i: number): void {
    if (i < 0 || i >= this.size) throw new RangeError(`bit ${i} outside a bitmap of ${this.size}`);
    let index = i;
    for (const level of this.levels) {
      const w = index >>> 5;
      const before = level[w]!;
      level[w] = before | (1 << (index & 31));
      if (level === this.levels[0] && level[w] !== before) this.setCount++;
      if (before !== 0) return; // the levels above already say this word is non-zero
      index = w;
    }
  }

  clear(i: number): void {
    if (i < 0 || i >= this.size) throw new RangeError(`bit ${i} outside a bitmap of ${this.size}`);
    let index = i;
    for (const level of this.levels) {
      const w = index >>> 5;
      const before = level[w]!;
      const after = (before & ~(1 << (index & 31))) >>> 0; // unsigned, like the stored word (bit 31 set: a negative int32)
      level[w] = after;
      if (level === this.levels[0] && after !== before) this.setCount--;
      if (after !== 0) return;
      index = w;
    }
  }

  /** Sets bits [start, start + count). */
  setRange(start: number, count: number): void {
    for (let i = start; i < start + count; i++) this.set(i);
  }

  /** The first set bit at or after `from`, or -1. */
  findNext(from: number): number {
    if (from >= this.size) return -1;
    const levels = this.levels;
    // Climb while the rest of the current word (from the position on) is empty.
    let level = 0;
    let index = Math.max(0, from);
    for (;;) {
      const w = index >>> 5;
      const bits = levels[level]![w]! & (~0 << (index & 31));
      if (bits !== 0) {
        index = (w << 5) + ctz(bits);
        break;
      }
      if (level === levels.length - 1) return -1;
      level++;
      index = w + 1;
      if (index >= levels[level - 1]!.length) return -1;
    }
    // Descend: each set bit names a non-zero word one level down.
    while (level > 0) {
      level--;
      index = (index << 5) + ctz(levels[level]![index]!);
    }
    return index < this.size ? index : -1;
  }

  /** Every set bit in order. */
  *[Symbol.iterator](): IterableIterator<number> {
    for (let i = this.findNext(0); i >= 0; i = this.findNext(i + 1)) yield i;
  }
}

function ctz(x: number): number {
  return 31 - Math.clz32(x & -x);
}

/** The plain alternative the benchmark compares against: scan every word of a flat bitmap. */
export function linearFindNext(words: Uint32Array, size: number, from: number): number {
  let w = from >>> 5;
  if (w >= words.length) return -1;
  let bits = words[w]! & (~0 << (from & 31));
  while (bits === 0) {
    if (++w >= words.length) return -1;
    bits = words[w]!;
  }
  const i = (w << 5) + ctz(bits);
  return i < size ? i : -1;
}
