const TEXT = new TextEncoder();

/**
 * Chainable big-endian writer into a growable buffer.
 * `take()` hands out the bytes written so far and starts a fresh buffer, so
 * a stream encoder can flush chunks without copying twice.
 */
export class ByteWriter {
  private buf: Uint8Array;
  private pos = 0;

  constructor(initialCapacity = 64 * 1024) {
    this.buf = new Uint8Array(initialCapacity);
  }

  get length(): number {
    return this.pos;
  }

  private reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  u8(v: number): this {
    this.reserve(1);
    this.buf[this.pos++] = v;
    return this;
  }

  be16(v: number): this {
    this.reserve(2);
    const b = this.buf;
    b[this.pos++] = v >>> 8;
    b[this.pos++] = v;
    return this;
  }

  be32(v: number): this {
    this.reserve(4);
    const b = this.buf;
    const p = this.pos;
    b[p] = v >>> 24;
    b[p + 1] = v >>> 16;
    b[p + 2] = v >>> 8;
    b[p + 3] = v;
    this.pos = p + 4;
    return this;
  }

  /** A be64 from a non-negative safe integer. */
  be64(v: number): this {
    const hi = Math.floor(v / 0x100000000);
    return this.be32(hi).be32(v >>> 0);
  }

  bytes(data: Uint8Array): this {
    this.reserve(data.length);
    this.buf.set(data, this.pos);
    this.pos += data.length;
    return this;
  }

  /** A str8: length byte + bytes, no NUL. */
  str8(s: string): this {
    const data = TEXT.encode(s);
    if (data.length > 255) throw new RangeError(`string of ${data.length} bytes does not fit a str8`);
    return this.u8(data.length).bytes(data);
  }

  /** The bytes written so far, as a view (valid until the next write), for a sink that consumes them at once. */
  view(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }

  /** Starts over in the same buffer (after view()'s bytes were consumed). */
  reset(): void {
    this.pos = 0;
  }

  /** The bytes written since the last take(); the writer starts over. */
  take(): Uint8Array {
    const out = this.buf.slice(0, this.pos);
    this.pos = 0;
    return out;
  }
}
