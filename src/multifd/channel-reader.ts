import { MigstreamError, type ErrorCode } from '../codec/errors.js';
import { type ChannelInflater, channelInflater } from './channel-codecs.js';
import {
  compressionOfFlags,
  FLAG_SYNC,
  INIT_BYTES,
  MAX_COMPRESSED_PAYLOAD,
  type MultifdCompression,
  type MultifdInit,
  type PacketHeader,
  packetHeaderBytes,
  parseInit,
  parsePacketHeader,
} from './format.js';

/** One decoded packet of a channel. */
export interface ChannelPacket {
  /** Offset of the packet header in its connection. */
  offset: number;
  header: PacketHeader;
  sync: boolean;
  /** Bytes of page data on the wire (after the header). */
  payloadBytes: number;
  /** The normal pages, inflated: header.normalPages × pageSize bytes. Valid until the next packet. */
  pages: Uint8Array;
  /** `pages` is a new buffer the caller may keep (an inflater that returns fresh output), not a view of the reader's. */
  owned: boolean;
}

/**
 * Incremental reader of one multifd connection: the handshake, then packets,
 * inflated in order with the channel's own inflater. Offsets in errors are
 * within the connection; the context names the channel once its id is known.
 */
export class ChannelReader {
  private buf = new Uint8Array(0);
  /** Connection offset of buf[0]. */
  private base = 0;
  init?: MultifdInit;
  compression?: MultifdCompression;
  private inflater?: ChannelInflater;
  /** Bytes pushed so far. */
  received = 0;
  private ended = false;

  constructor(
    readonly pageSize = 4096,
    /** A label for errors before the handshake is read (e.g. "conn-3"). */
    readonly label = '',
    /**
     * Uncompressed packets: hand out `pages` as a view of the reader's buffer, valid only until the next push()
     * (a relay deflating each packet at once saves a copy of every page).
     */
    private readonly borrowPages = false,
  ) {}

  /** Backing store of `buf`: appended in place, compacted when full (no copy of everything buffered per push). */
  private store = new Uint8Array(0);

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    const live = this.buf.length;
    const start = this.buf.byteOffset - this.store.byteOffset;
    if (this.buf.buffer !== this.store.buffer || start + live + chunk.length > this.store.length) {
      const size = Math.max(live + chunk.length, Math.min(2 * this.store.length, live + chunk.length + (4 << 20)), 1 << 16);
      const next = size > this.store.length ? new Uint8Array(size) : this.store;
      if (next === this.store) next.copyWithin(0, start, start + live);
      else next.set(this.buf);
      this.store = next;
      this.buf = next.subarray(0, live);
    }
    const s0 = this.buf.byteOffset - this.store.byteOffset;
    this.store.set(chunk, s0 + live);
    this.buf = this.store.subarray(s0, s0 + live + chunk.length);
    this.received += chunk.length;
  }

  /** No more bytes will come: next() then reports a cut packet as TRUNCATED. */
  end(): void {
    this.ended = true;
  }

  get channel(): number | undefined {
    return this.init?.id;
  }

  private fail(code: ErrorCode, at: number, detail: string): never {
    throw new MigstreamError(code, at, this.init ? detail : `${this.label ? `${this.label}: ` : ''}${detail}`, this.context());
  }

  private context() {
    return this.init ? { channel: this.init.id } : {};
  }

  /** Whether every byte pushed was consumed by complete packets. */
  get atBoundary(): boolean {
    return this.buf.length === 0 && this.init !== undefined;
  }

  /** Reads the handshake: the channel's id, or undefined when more bytes are needed. */
  handshake(): MultifdInit | undefined {
    if (!this.init && this.need(INIT_BYTES, 'the handshake')) {
      try {
        this.init = parseInit(this.buf, this.base);
      } catch (e) {
        if (e instanceof MigstreamError && this.label) throw new MigstreamError(e.code, e.offset, `${this.label}: ${e.detail}`);
        throw e;
      }
      this.consume(INIT_BYTES);
    }
    return this.init;
  }

  /** The next packet, or undefined when more bytes are needed (or none are left after end()). */
  next(): ChannelPacket | undefined {
    try {
      return this.tryNext();
    } catch (e) {
      if (e instanceof MigstreamError) throw this.init && e.context.channel === undefined ? e.withContext(this.context()) : e;
      throw e;
    }
  }

  private need(n: number, what: string): boolean {
    if (this.buf.length >= n) return true;
    if (this.ended && this.buf.length > 0) this.fail('TRUNCATED', this.base + this.buf.length, `the connection ended inside ${what} (needed ${n} bytes)`);
    if (this.ended && what === 'the handshake') this.fail('TRUNCATED', this.base, 'the connection ended before the multifd handshake');
    return false;
  }

  private consume(n: number): void {
    this.buf = this.buf.subarray(n);
    this.base += n;
  }

  private tryNext(): ChannelPacket | undefined {
    if (!this.handshake()) return undefined;
    if (!this.need(16, 'a packet header')) return undefined;
    const at = this.base;
    const hb = packetHeaderBytes(this.buf, at, this.pageSize);
    if (!this.need(hb, 'a packet header')) return undefined;
    const header = parsePacketHeader(this.buf, at, this.pageSize);
    let payloadBytes = 0;
    let compression: MultifdCompression | undefined;
    if (header.normalPages > 0) {
      compression = compressionOfFlags(header.flags);
      if (!compression) this.fail('BAD_RAM_RECORD', at + 8, `multifd: unknown compression flags ${(header.flags & 0xe).toString(16)}`);
      if (this.compression && compression !== this.compression)
        this.fail('BAD_RAM_RECORD', at + 8, `multifd: packet compressed with ${compression}, the channel uses ${this.compression}`);
      payloadBytes = compression === 'none' ? header.normalPages * this.pageSize : header.nextPacketSize;
      if (compression !== 'none' && payloadBytes > MAX_COMPRESSED_PAYLOAD)
        this.fail('LIMIT', at + 20, `multifd: next_packet_size ${payloadBytes} exceeds the destination's ${MAX_COMPRESSED_PAYLOAD}-byte buffer`);
    }
    if (!this.need(hb + payloadBytes, 'a packet payload')) return undefined;
    let pages: Uint8Array = new Uint8Array(0);
    let owned = false;
    if (compression) {
      if (!this.compression) {
        try {
          this.inflater = channelInflater(compression);
        } catch (e) {
          this.fail('UNSUPPORTED', at + 8, (e as Error).message);
        }
        this.compression = compression;
      }
      try {
        const payload = this.borrowPages && compression === 'none' ? this.buf.subarray(hb, hb + payloadBytes) : this.buf.slice(hb, hb + payloadBytes);
        pages = this.inflater!.inflate(payload, header.normalPages * this.pageSize);
        owned = compression !== 'none' && this.inflater!.fresh === true;
      } catch (e) {
        this.fail('DECOMPRESS', at + hb, `multifd ${this.init!.id}: ${(e as Error).message}`);
      }
    }
    this.consume(hb + payloadBytes);
    return { offset: at, header, sync: (header.flags & FLAG_SYNC) !== 0, payloadBytes, pages, owned };
  }
}
