import { concatBytes } from '../codec/concat.js';
import { MigstreamError } from '../codec/errors.js';

/** migration.c's enum mig_rp_message_type and rp_cmd_args lengths (-1: variable). */
const RP_NAMES = ['INVALID', 'SHUT', 'PONG', 'REQ_PAGES_ID', 'REQ_PAGES', 'RECV_BITMAP', 'RESUME_ACK'] as const;
const RP_LENGTHS = [-1, 4, 4, -1, 12, -1, 4] as const;
const RECV_BITMAP_ENDING = 0x0123456789abcdefn;

/** One return-path message (destination → source), with its absolute offset in the d2s bytes. */
export type ReturnPathEvent =
  | { type: 'SHUT' | 'RESUME_ACK'; offset: number; value: number }
  | { type: 'PONG'; offset: number; value: number }
  /** REQ_PAGES carries no name: `block` is the one of the last REQ_PAGES_ID. */
  | { type: 'REQ_PAGES' | 'REQ_PAGES_ID'; offset: number; block: string; start: number; length: number }
  | { type: 'RECV_BITMAP'; offset: number; block: string; bitmapBytes: number };

/**
 * Incremental decoder of the return path (be16 type, be16 len, payload), as
 * the source's rp thread reads it. RECV_BITMAP is followed, outside its
 * frame, by be64 size, the bitmap and be64 0x0123456789abcdef.
 */
export class ReturnPathDecoder {
  private buf: Uint8Array = new Uint8Array(0);
  private base = 0;
  private lastBlock = '';
  private shut = false;

  constructor(
    private readonly emit: (ev: ReturnPathEvent) => void,
    private readonly maxBitmapBytes = 1 << 30,
  ) {}

  push(chunk: Uint8Array): void {
    this.buf = this.buf.length === 0 ? chunk.slice() : concatBytes([this.buf, chunk]);
    let p = 0;
    for (;;) {
      const used = this.message(p);
      if (used === 0) break;
      p += used;
    }
    this.base += p;
    this.buf = this.buf.subarray(p);
  }

  /** Bytes left that are not a whole message. */
  get pending(): number {
    return this.buf.length;
  }

  end(): void {
    if (this.buf.length > 0)
      throw new MigstreamError(
        'TRUNCATED',
        this.base + this.buf.length,
        `unexpected end of the return path: ${this.buf.length} bytes of an incomplete message`,
      );
  }

  // Returns the bytes the message at p took, 0 when it is not all there yet.
  private message(p: number): number {
    const b = this.buf;
    if (p + 4 > b.length) return 0;
    const v = new DataView(b.buffer, b.byteOffset, b.length);
    const at = this.base + p;
    const type = v.getUint16(p);
    const len = v.getUint16(p + 2);
    if (this.shut) throw new MigstreamError('TRAILING_DATA', at, 'return path: a message after SHUT');
    if (type === 0 || type >= RP_NAMES.length)
      throw new MigstreamError(
        'BAD_COMMAND',
        at,
        `Received invalid message 0x${type.toString(16).padStart(4, '0')} length 0x${len.toString(16).padStart(4, '0')}`,
      );
    const name = RP_NAMES[type]!;
    const fixed = RP_LENGTHS[type]!;
    if (fixed >= 0 && len !== fixed)
      throw new MigstreamError(
        'BAD_COMMAND',
        at + 2,
        `Received '${name}' message (0x${type.toString(16).padStart(4, '0')}) with incorrect length ${len} expecting ${fixed}`,
      );
    if (p + 4 + len > b.length) return 0;
    const q = p + 4;
    const be64 = (o: number) => v.getUint32(o) * 2 ** 32 + v.getUint32(o + 4);
    switch (name) {
      case 'SHUT':
      case 'RESUME_ACK':
        if (name === 'SHUT') this.shut = true;
        this.emit({ type: name, offset: at, value: v.getUint32(q) });
        return 4 + len;
      case 'PONG':
        this.emit({ type: name, offset: at, value: v.getUint32(q) });
        return 4 + len;
      case 'REQ_PAGES':
        if (!this.lastBlock) throw new MigstreamError('BAD_COMMAND', at, 'REQ_PAGES before any REQ_PAGES_ID named a RAMBlock');
        this.emit({ type: name, offset: at, block: this.lastBlock, start: be64(q), length: v.getUint32(q + 8) });
        return 4 + len;
      case 'REQ_PAGES_ID': {
        const n = b[q + 12];
        if (len < 13 || n === undefined || len !== 13 + n)
          throw new MigstreamError('BAD_COMMAND', at + 2, `REQ_PAGES_ID of ${len} bytes: expected 13 + the name length`);
        this.lastBlock = new TextDecoder().decode(b.subarray(q + 13, q + 13 + n));
        this.emit({ type: name, offset: at, block: this.lastBlock, start: be64(q), length: v.getUint32(q + 8) });
        return 4 + len;
      }
      default: {
        // RECV_BITMAP: u8 + name in the frame; size, bitmap and ending mark after it.
        const n = b[q];
        if (n === undefined || len !== 1 + n) throw new MigstreamError('BAD_COMMAND', at + 2, `RECV_BITMAP of ${len} bytes: expected 1 + the name length`);
        const after = q + len;
        if (after + 8 > b.length) return 0;
        const size = be64(after);
        if (size > this.maxBitmapBytes)
          throw new MigstreamError('LIMIT', this.base + after, `RECV_BITMAP of ${size} bytes exceeds the limit of ${this.maxBitmapBytes}`);
        if (after + 16 + size > b.length) return 0;
        if (v.getBigUint64(after + 8 + size) !== RECV_BITMAP_ENDING) {
          throw new MigstreamError('BAD_COMMAND', this.base + after + 8 + size, 'RECV_BITMAP: expected the ending mark 0x0123456789abcdef after the bitmap');
        }
        this.emit({ type: 'RECV_BITMAP', offset: at, block: new TextDecoder().decode(b.subarray(q + 1, q + 1 + n)), bitmapBytes: size });
        return 4 + len + 16 + size;
      }
    }
  }
}
