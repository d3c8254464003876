import { unzlibSync, zlibSync } from 'fflate';

/**
 * One page in QEMU's COMPRESS_PAGE framing: a complete zlib stream (RFC 1950)
 * per page, as migration/qemu-file.c qemu_put_compression_data writes it
 * (deflateReset + one deflate(Z_FINISH), windowBits 15, memLevel 8) and
 * qemu_uncompress_data reads it (one inflate that must reach Z_STREAM_END
 * within a page of output).
 *
 * Two implementations: node:zlib under Node (src/stream/zlib-node.ts) and
 * fflate here, the portable path with no Node built-ins.
 */
export interface ZlibPageCodec {
  readonly name: string;
  /** Compresses one page at `level` (0–9) into a fresh zlib stream. */
  deflate(page: Uint8Array, level: number): Uint8Array;
  /**
   * Inflates one zlib stream that must end within `pageSize` bytes of output.
   * Returns the inflated bytes (QEMU accepts fewer than a page). Throws a plain
   * Error with zlib's wording; callers add the stream offset.
   */
  inflate(src: Uint8Array, pageSize: number): Uint8Array;
}

/** The FLG byte zlib's deflateInit writes for each level (FLEVEL bits + FCHECK), RFC 1950 §2.2. */
const ZLIB_FLG = [0x01, 0x01, 0x5e, 0x5e, 0x5e, 0x5e, 0x9c, 0xda, 0xda, 0xda] as const;

export function checkLevel(level: number): void {
  if (!Number.isInteger(level) || level < 0 || level > 9) throw new RangeError(`zlib level must be 0..9, got ${level}`);
}

/** Adler-32 (RFC 1950 §8), the zlib trailer fflate does not verify. */
export function adler32(data: Uint8Array): number {
  let a = 1;
  let b = 0;
  for (let i = 0; i < data.length; ) {
    const end = Math.min(i + 5552, data.length); // largest run before the sums can overflow 2^53… and 2^32
    for (; i < end; i++) {
      a += data[i]!;
      b += a;
    }
    a %= 65521;
    b %= 65521;
  }
  return ((b << 16) | a) >>> 0;
}

/**
 * fflate in QEMU's framing. Its deflate is its own (valid zlib, other bytes
 * than zlib's), so the header's informational FLEVEL is rewritten to what
 * zlib writes: the first two bytes then match QEMU's records.
 */
export const fflateZlib: ZlibPageCodec = {
  name: 'fflate',
  deflate(page, level) {
    checkLevel(level);
    const out = zlibSync(page, { level: level as 0 });
    out[1] = ZLIB_FLG[level]!;
    return out;
  },
  inflate(src, pageSize) {
    if (src.length < 6) throw new Error('unexpected end of file');
    if ((src[0]! & 0x0f) !== 8 || ((src[0]! << 8) | src[1]!) % 31 !== 0) throw new Error('incorrect header check');
    if (src[1]! & 0x20) throw new Error('need dictionary');
    // fflate stops silently at the end of a caller's buffer: one spare byte tells "more than a page".
    let out: Uint8Array;
    try {
      out = unzlibSync(src, { out: new Uint8Array(pageSize + 1) });
    } catch (e) {
      throw new Error((e as Error).message);
    }
    if (out.length > pageSize) throw new Error(`inflated data exceeds ${pageSize} bytes`);
    const sum = adler32(out);
    // QEMU's writer ends the record with the trailer; only other producers may leave bytes after it.
    if (be32(src, src.length - 4) === sum) return out;
    const end = deflateEnd(src);
    if (end < 0 || end + 4 > src.length) throw new Error('unexpected end of file');
    if (be32(src, end) !== sum) throw new Error('incorrect data check');
    return out;
  },
};

function be32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

/**
 * Where the deflate data of a zlib stream ends (the Adler-32 offset), found
 * by walking the block headers: fflate does not report how much it consumed.
 * Returns -1 when the data ends early.
 */
function deflateEnd(src: Uint8Array): number {
  const r = new BitReader(src, 16); // after the 2-byte header
  try {
    for (;;) {
      const final = r.bits(1);
      const type = r.bits(2);
      if (type === 0) {
        r.bit = (r.bit + 7) & ~7;
        const len = r.bits(16);
        r.bits(16);
        r.bit += len * 8;
        if (r.bit > r.limit) return -1;
      } else if (type === 1 || type === 2) {
        skipHuffmanBlock(r, type);
      } else {
        return -1;
      }
      if (final) return (r.bit + 7) >>> 3;
    }
  } catch {
    return -1;
  }
}

/** LSB-first bit reader over deflate data; reading past the end throws RangeError. */
class BitReader {
  readonly limit: number;

  constructor(
    private readonly src: Uint8Array,
    public bit: number,
  ) {
    this.limit = src.length * 8;
  }

  bits(n: number): number {
    let v = 0;
    for (let i = 0; i < n; i++, this.bit++) {
      if (this.bit >= this.limit) throw new RangeError();
      v |= ((this.src[this.bit >>> 3]! >>> (this.bit & 7)) & 1) << i;
    }
    return v;
  }
}

const LEN_EXTRA = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];
const DIST_EXTRA = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13];
const CL_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];

/** Canonical Huffman decoding table: code lengths → (count per length, symbols in order). */
function huffman(lengths: ArrayLike<number>): { counts: Int32Array; symbols: Int32Array } {
  const counts = new Int32Array(16);
  for (let i = 0; i < lengths.length; i++) counts[lengths[i]!]!++;
  counts[0] = 0;
  const offs = new Int32Array(16);
  for (let i = 1; i < 16; i++) offs[i] = offs[i - 1]! + counts[i - 1]!;
  const symbols = new Int32Array(lengths.length);
  for (let i = 0; i < lengths.length; i++) if (lengths[i]) symbols[offs[lengths[i]!]!++] = i;
  return { counts, symbols };
}

/** Skips one fixed (1) or dynamic (2) Huffman block without producing output, leaving `r` after it. */
function skipHuffmanBlock(r: BitReader, type: number): void {
  const bits = (n: number): number => r.bits(n);
  const decode = (h: { counts: Int32Array; symbols: Int32Array }): number => {
    let code = 0;
    let first = 0;
    let index = 0;
    for (let len = 1; len < 16; len++) {
      code |= bits(1);
      const count = h.counts[len]!;
      if (code - count < first) return h.symbols[index + (code - first)]!;
      index += count;
      first += count;
      first <<= 1;
      code <<= 1;
    }
    throw new RangeError();
  };
  let lit: { counts: Int32Array; symbols: Int32Array };
  let dist: { counts: Int32Array; symbols: Int32Array };
  if (type === 1) {
    const l = new Array<number>(288);
    for (let i = 0; i < 288; i++) l[i] = i < 144 ? 8 : i < 256 ? 9 : i < 280 ? 7 : 8;
    lit = huffman(l);
    dist = huffman(new Array<number>(30).fill(5));
  } else {
    const nlen = bits(5) + 257;
    const ndist = bits(5) + 1;
    const ncode = bits(4) + 4;
    const cl = new Array<number>(19).fill(0);
    for (let i = 0; i < ncode; i++) cl[CL_ORDER[i]!] = bits(3);
    const clh = huffman(cl);
    const lengths: number[] = [];
    while (lengths.length < nlen + ndist) {
      const sym = decode(clh);
      if (sym < 16) lengths.push(sym);
      else if (sym === 16) {
        const prev = lengths.at(-1);
        if (prev === undefined) throw new RangeError();
        for (let r = 3 + bits(2); r > 0; r--) lengths.push(prev);
      } else for (let r = sym === 17 ? 3 + bits(3) : 11 + bits(7); r > 0; r--) lengths.push(0);
    }
    lit = huffman(lengths.slice(0, nlen));
    dist = huffman(lengths.slice(nlen, nlen + ndist));
  }
  for (;;) {
    const sym = decode(lit);
    if (sym === 256) return;
    if (sym > 256) {
      bits(LEN_EXTRA[sym - 257] ?? 0);
      bits(DIST_EXTRA[decode(dist)] ?? 0);
    }
  }
}
