/**
 * The LZ4 block format (lz4 doc/lz4_Block_format.md), one block per page.
 *
 * The compressor follows liblz4's LZ4_compress_fast for inputs below 64 KiB
 * (a 2^13-entry table of 16-bit positions, hash = read32 · 2654435761 >> 19,
 * the skip schedule `step = (acceleration << 6)++ >> 6`), so at a given
 * acceleration it writes the same bytes as liblz4 1.9 (test/lz4.test.ts
 * checks this against the native `lz4` tool). Pages up to 64 KiB only.
 */

const MINMATCH = 4;
const LASTLITERALS = 5;
const MFLIMIT = 12;
const MIN_LENGTH = MFLIMIT + 1;
const SKIP_TRIGGER = 6;
const HASH_SHIFT = 32 - 13;
const ML_MASK = 15;
const RUN_MASK = 15;
/** LZ4_ACCELERATION_MAX. */
export const LZ4_MAX_ACCELERATION = 65537;
/** Largest input the 16-bit position table covers (liblz4's LZ4_64Klimit). */
const LIMIT_64K = 65536 + MFLIMIT - 1;

/** LZ4_compressBound: the most bytes one block of `size` input bytes can take. */
export function lz4Bound(size: number): number {
  return size + Math.floor(size / 255) + 16;
}

function read32(b: DataView, i: number): number {
  return b.getInt32(i, true);
}

/** Short literal runs copy faster by hand than through a subarray view. */
function copyBytes(src: Uint8Array, from: number, dst: Uint8Array, to: number, n: number): void {
  if (n > 32) {
    dst.set(src.subarray(from, from + n), to);
    return;
  }
  for (let i = 0; i < n; i++) dst[to + i] = src[from + i]!;
}

function hash(b: DataView, i: number): number {
  return Math.imul(read32(b, i), 0x9e3779b1) >>> HASH_SHIFT;
}

/**
 * A reusable LZ4 page compressor: one position table and one output buffer,
 * so compressing a page allocates nothing but its result.
 */
export class Lz4Compressor {
  private readonly table = new Uint16Array(1 << 13);
  private out: Uint8Array = new Uint8Array(lz4Bound(4096));
  readonly acceleration: number;

  /** @param acceleration 1 (default, best ratio) … 65537; higher trades ratio for speed as in liblz4. */
  constructor(acceleration = 1) {
    if (!Number.isInteger(acceleration) || acceleration < 1 || acceleration > LZ4_MAX_ACCELERATION) {
      throw new RangeError(`LZ4 acceleration must be an integer 1..${LZ4_MAX_ACCELERATION}, got ${acceleration}`);
    }
    this.acceleration = acceleration;
  }

  /** Compresses `src` into a block; the result is a view valid until the next call. */
  compressView(src: Uint8Array): Uint8Array {
    const n = src.length;
    if (n > LIMIT_64K) throw new RangeError(`LZ4 page of ${n} bytes: at most 64 KiB`);
    if (this.out.length < lz4Bound(n)) this.out = new Uint8Array(lz4Bound(n));
    const out = this.out;
    const table = this.table;
    const view = new DataView(src.buffer, src.byteOffset, src.byteLength);
    table.fill(0);
    let op = 0;
    let anchor = 0;
    let ip = 0;
    const mflimitPlusOne = n - MFLIMIT + 1;
    const matchLimit = n - LASTLITERALS;

    if (n >= MIN_LENGTH) {
      table[hash(view, 0)] = 0;
      ip = 1;
      let forwardH = hash(view, ip);
      search: for (;;) {
        let match: number;
        // find a match, stepping faster the longer none is found
        let forwardIp = ip;
        let step = 1;
        let searchMatchNb = this.acceleration << SKIP_TRIGGER;
        do {
          const h = forwardH;
          match = table[h]!;
          ip = forwardIp;
          forwardIp += step;
          step = searchMatchNb++ >> SKIP_TRIGGER;
          if (forwardIp > mflimitPlusOne) break search;
          forwardH = hash(view, forwardIp);
          table[h] = ip;
        } while (read32(view, match) !== read32(view, ip));

        // catch up: extend the match backwards over the pending literals
        while (ip > anchor && match > 0 && src[ip - 1] === src[match - 1]) {
          ip--;
          match--;
        }

        // literals
        const litLength = ip - anchor;
        let token = op++;
        if (litLength >= RUN_MASK) {
          out[token] = RUN_MASK << 4;
          let len = litLength - RUN_MASK;
          for (; len >= 255; len -= 255) out[op++] = 255;
          out[op++] = len;
        } else {
          out[token] = litLength << 4;
        }
        copyBytes(src, anchor, out, op, litLength);
        op += litLength;

        for (;;) {
          // offset and match length
          const offset = ip - match;
          out[op++] = offset & 0xff;
          out[op++] = offset >>> 8;
          let a = ip + MINMATCH;
          let b = match + MINMATCH;
          while (a + 4 <= matchLimit && read32(view, a) === read32(view, b)) {
            a += 4;
            b += 4;
          }
          while (a < matchLimit && src[a] === src[b]) {
            a++;
            b++;
          }
          let matchCode = a - (ip + MINMATCH);
          ip = a;
          if (matchCode >= ML_MASK) {
            out[token]! += ML_MASK;
            matchCode -= ML_MASK;
            for (; matchCode >= 255; matchCode -= 255) out[op++] = 255;
            out[op++] = matchCode;
          } else {
            out[token]! += matchCode;
          }
          anchor = ip;
          if (ip >= mflimitPlusOne) break search;

          table[hash(view, ip - 2)] = ip - 2;
          // an immediate next match needs no literals
          const h = hash(view, ip);
          match = table[h]!;
          table[h] = ip;
          if (read32(view, match) !== read32(view, ip)) break;
          token = op++;
          out[token] = 0;
        }
        forwardH = hash(view, ++ip);
      }
    }

    // last literals
    const lastRun = n - anchor;
    if (lastRun >= RUN_MASK) {
      out[op++] = RUN_MASK << 4;
      let acc = lastRun - RUN_MASK;
      for (; acc >= 255; acc -= 255) out[op++] = 255;
      out[op++] = acc;
    } else {
      out[op++] = lastRun << 4;
    }
    out.set(src.subarray(anchor), op);
    op += lastRun;
    return out.subarray(0, op);
  }

  /** Compresses `src` into a fresh block. */
  compress(src: Uint8Array): Uint8Array {
    return this.compressView(src).slice();
  }
}

/**
 * Decodes one LZ4 block into `out`, which it must fill exactly (a page).
 * Every read and copy is bounds-checked; malformed input throws a plain Error
 * with what was wrong and where in the block.
 */
export function lz4DecompressInto(src: Uint8Array, out: Uint8Array): void {
  const end = src.length;
  const size = out.length;
  let ip = 0;
  let op = 0;
  for (;;) {
    if (ip >= end) throw new Error(`LZ4 block ends before its last literals (at ${ip})`);
    const token = src[ip++]!;
    let lit = token >>> 4;
    if (lit === RUN_MASK) {
      let s: number;
      do {
        if (ip >= end) throw new Error('LZ4 literal length runs past the block');
        s = src[ip++]!;
        lit += s;
      } while (s === 255);
    }
    if (ip + lit > end) throw new Error(`LZ4 literals run past the block (at ${ip})`);
    if (op + lit > size) throw new Error(`LZ4 literals run past the ${size}-byte page (at ${ip})`);
    copyBytes(src, ip, out, op, lit);
    ip += lit;
    op += lit;
    if (ip === end) break; // the last sequence is literals only
    if (ip + 2 > end) throw new Error('LZ4 match offset runs past the block');
    const offset = src[ip]! | (src[ip + 1]! << 8);
    ip += 2;
    if (offset === 0 || offset > op) throw new Error(`LZ4 match offset ${offset} points before the page (at ${ip - 2})`);
    let len = (token & ML_MASK) + MINMATCH;
    if ((token & ML_MASK) === ML_MASK) {
      let s: number;
      do {
        if (ip >= end) throw new Error('LZ4 match length runs past the block');
        s = src[ip++]!;
        len += s;
      } while (s === 255);
    }
    if (op + len > size) throw new Error(`LZ4 match runs past the ${size}-byte page (at ${ip})`);
    let from = op - offset;
    if (offset >= len && len > 32) {
      out.copyWithin(op, from, from + len);
      op += len;
    } else {
      for (const stop = op + len; op < stop; ) out[op++] = out[from++]!; // overlapping copies repeat the pattern
    }
  }
  if (op !== size) throw new Error(`LZ4 block holds ${op} bytes, expected a ${size}-byte page`);
}
