import { MigstreamError, NeedMoreData, type ErrorCode } from './errors.js';

const TEXT = new TextDecoder('utf-8', { fatal: false });
const STRICT = new TextDecoder('utf-8', { fatal: true });

/**
 * Big-endian reader over one contiguous buffer. `pos` is public; `base` is the
 * absolute stream offset of `buf[0]`, so every error names a stream offset.
 * Reads past the end throw NeedMoreData (never a RangeError).
 */
export class ByteReader {
  buf: Uint8Array;
  pos: number;
  end: number;
  base: number;

  constructor(buf: Uint8Array, base = 0, pos = 0, end = buf.length) {
    this.buf = buf;
    this.base = base;
    this.pos = pos;
    this.end = end;
  }

  /** Absolute stream offset of the next byte. */
  get offset(): number {
    return this.base + this.pos;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  need(n: number, what: string): void {
    if (this.pos + n > this.end) throw new NeedMoreData(this.base + this.pos + n, what);
  }

  u8(what = 'u8'): number {
    this.need(1, what);
    return this.buf[this.pos++]!;
  }

  peekU8(what = 'u8'): number {
    this.need(1, what);
    return this.buf[this.pos]!;
  }

  be16(what = 'be16'): number {
    this.need(2, what);
    const b = this.buf;
    const p = this.pos;
    this.pos = p + 2;
    return (b[p]! << 8) | b[p + 1]!;
  }

  be32(what = 'be32'): number {
    this.need(4, what);
    const b = this.buf;
    const p = this.pos;
    this.pos = p + 4;
    return ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
  }

  /**
   * A be64 as a JS number. Values of 2^53 and above cannot be offsets or sizes
   * of anything we can hold, so they are rejected rather than rounded.
   */
  be64(what = 'be64'): number {
    const at = this.offset;
    const hi = this.be32(what);
    const lo = this.be32(what);
    if (hi > 0x1fffff) {
      throw new MigstreamError('LIMIT', at, `${what} 0x${hi.toString(16)}${lo.toString(16).padStart(8, '0')} is beyond 2^53`);
    }
    return hi * 0x100000000 + lo;
  }

  bytes(n: number, what = 'bytes'): Uint8Array {
    this.need(n, what);
    const p = this.pos;
    this.pos = p + n;
    return this.buf.subarray(p, p + n);
  }

  skip(n: number, what = 'bytes'): void {
    this.need(n, what);
    this.pos += n;
  }

  /**
   * A str8: one length byte, then that many bytes, no NUL. Names must be
   * UTF-8 (QEMU's idstrs are ASCII): a lossy decode would let two names
   * collide and could not be written back (`code` says what to report).
   */
  str8(what = 'string', code: ErrorCode = 'UNSUPPORTED'): string {
    const n = this.u8(what);
    const at = this.offset;
    const bytes = this.bytes(n, what);
    try {
      return STRICT.decode(bytes);
    } catch {
      const shown = Array.from(bytes.subarray(0, 32), (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`)).join(
        '',
      );
      throw new MigstreamError(code, at, `${what} is not valid UTF-8: "${shown}${n > 32 ? '…' : ''}"`);
    }
  }
}

export function decodeText(bytes: Uint8Array): string {
  return TEXT.decode(bytes);
}
