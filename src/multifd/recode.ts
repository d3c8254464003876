import { MigstreamError } from '../codec/errors.js';
import { type ChannelDeflater, channelDeflater } from './channel-codecs.js';
import { ChannelReader } from './channel-reader.js';
import { COMPRESSION_FLAGS, FLAG_COMPRESSION_MASK, type MultifdCompression, writeInit, writePacketHeader } from './format.js';

/** What a relay does to multifd channels: rewrite every packet's pages with this compression. */
export interface MultifdRelayOptions {
  compression: MultifdCompression;
  /** zlib level (default 1). */
  level?: number;
  /** zstd only: a 128 MiB window with long-distance matching (pages repeated far apart in a channel; both relays hold the window). */
  long?: boolean;
}

/**
 * Re-encodes one multifd connection packet by packet, as bytes arrive: the
 * handshake (channel id, uuid) and every header field (flags, packet_num,
 * offsets, RAMBlock) pass through; only the payload is inflated with the
 * incoming channel's state and deflated with this channel's own, so sync
 * points and the channel's identity stay QEMU's. Each packet goes out as soon
 * as it is complete (a packet is at most 128 pages).
 */
export class MultifdRecoder {
  private readonly reader: ChannelReader;
  private readonly deflater: ChannelDeflater;
  private readonly flags: number;
  private handshakeSent = false;
  packets = 0;

  constructor(
    private readonly o: MultifdRelayOptions,
    private readonly write: (chunk: Uint8Array) => void,
    pageSize = 4096,
    label = '',
  ) {
    this.reader = new ChannelReader(pageSize, label, true);
    this.deflater = channelDeflater(o.compression, o.level ?? 1, o.long);
    this.flags = COMPRESSION_FLAGS[o.compression];
  }

  get channel(): number | undefined {
    return this.reader.channel;
  }

  push(chunk: Uint8Array): void {
    this.reader.push(chunk);
    this.drain();
  }

  /** The source closed the connection: a cut packet is TRUNCATED. */
  end(): void {
    this.reader.end();
    this.drain();
  }

  private drain(): void {
    if (!this.handshakeSent) {
      const init = this.reader.handshake();
      if (!init) return;
      this.write(writeInit(init));
      this.handshakeSent = true;
    }
    for (let p = this.reader.next(); p; p = this.reader.next()) {
      const h = p.header;
      const n = h.normalPages;
      const payload = n > 0 ? this.deflater.deflate(p.pages) : new Uint8Array(0);
      if (h.offsets.length !== n) throw new MigstreamError('INTERNAL', p.offset, 'multifd: offsets and page count disagree');
      this.write(
        writePacketHeader({
          flags: (h.flags & ~FLAG_COMPRESSION_MASK) | (n > 0 ? this.flags : 0),
          pagesAlloc: h.pagesAlloc,
          offsets: h.offsets,
          nextPacketSize: n > 0 ? payload.length : h.nextPacketSize,
          packetNum: h.packetNum,
          ramblock: h.ramblock,
        }),
      );
      // the writer keeps what it is given: a payload that is (or views) pages the reader still owns is copied
      if (payload.length > 0) this.write(payload.buffer === p.pages.buffer && !p.owned ? payload.slice() : payload);
      this.packets++;
    }
  }
}
