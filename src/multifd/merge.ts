import { MigstreamError } from '../codec/errors.js';
import type { EventHandler, RamBlockInfo, StreamEvent } from '../stream/events.js';
import type { ChannelPacket, ChannelReader } from './channel-reader.js';
import type { MultifdCompression } from './format.js';

/** A channel's reader and a way to give it more bytes: pull() returns false at the end of the connection. */
export interface ChannelSource {
  reader: ChannelReader;
  pull(): boolean;
}

export interface ChannelStats {
  channel: number;
  /** Connection index in the recording (conn-N), or the --channel position. */
  source: string;
  compression?: MultifdCompression;
  packets: number;
  syncPackets: number;
  /** SYNC packets that carried pages too (QEMU before 9.0 does that). */
  syncWithPages: number;
  pages: number;
  /** Bytes on the wire: handshake, headers and payloads. */
  wireBytes: number;
  headerBytes: number;
  payloadBytes: number;
}

export interface EpochStats {
  /** The main channel's RAM section index whose EOS closed this epoch. */
  index: number;
  packets: number;
  pages: number;
  wireBytes: number;
  payloadBytes: number;
  /** Pages the main channel carried in this epoch (zero pages in 7.2). */
  mainPages: number;
  /** Pages sent again in the same epoch (same block and offset). */
  duplicates: number;
}

export interface MultifdStats {
  channels: ChannelStats[];
  epochs: EpochStats[];
}

/**
 * Joins a multifd migration into one event sequence, as the destination
 * applies it: every EOS of the main channel (an iteration-end) waits for one
 * SYNC packet per channel (multifd_recv_sync_main), so before passing the
 * iteration-end on, each channel's packets up to its next SYNC become page
 * events. A page goes out at most once per epoch (or twice with the same
 * bytes), so the order inside an epoch does not matter.
 */
export class MultifdMerger {
  readonly stats: MultifdStats;
  private blocks = new Map<string, RamBlockInfo>();
  private pageSize = 4096;
  private mainPages = 0;
  private seen = new Set<string>();
  /** packet_num is global over the channels (multifd_send_state->packet_num++): a gap means a missing channel. */
  private packetNums = new Set<number>();

  constructor(
    private readonly sources: { source: ChannelSource; label: string }[],
    private readonly handler: EventHandler,
  ) {
    this.stats = { channels: [], epochs: [] };
    const ids = new Set<number>();
    for (const s of sources) {
      const r = s.source.reader;
      while (!r.handshake()) {
        if (!s.source.pull()) r.end();
      }
      const id = r.init!.id;
      if (ids.has(id)) throw new MigstreamError('BAD_RAM_RECORD', 24, `${s.label}: a second connection with multifd channel id ${id}`, { channel: id });
      ids.add(id);
      this.stats.channels.push({
        channel: id,
        source: s.label,
        packets: 0,
        syncPackets: 0,
        syncWithPages: 0,
        pages: 0,
        wireBytes: 64,
        headerBytes: 0,
        payloadBytes: 0,
      });
    }
  }

  /** The handler for the main channel's events. */
  readonly handle = (ev: StreamEvent): void => {
    if (ev.type === 'ram-blocks') for (const b of ev.blocks) this.blocks.set(b.idstr, b);
    else if (ev.type === 'page') {
      this.pageSize = ev.pageSize;
      this.mainPages++;
    } else if (ev.type === 'iteration-end') this.epoch(ev.index);
    else if (ev.type === 'end') this.finish();
    this.handler(ev);
  };

  private nextPacket(i: number): ChannelPacket | undefined {
    const s = this.sources[i]!.source;
    for (;;) {
      const p = s.reader.next();
      if (p) return p;
      if (!s.pull()) {
        s.reader.end();
        return s.reader.next();
      }
    }
  }

  private epoch(index: number): void {
    const e: EpochStats = { index, packets: 0, pages: 0, wireBytes: 0, payloadBytes: 0, mainPages: this.mainPages, duplicates: 0 };
    this.mainPages = 0;
    this.seen.clear();
    this.sources.forEach((_, i) => {
      const cs = this.stats.channels[i]!;
      for (;;) {
        const p = this.nextPacket(i);
        if (!p)
          throw new MigstreamError('TRUNCATED', this.sources[i]!.source.reader.received, `the channel ended before its SYNC packet for RAM section ${index}`, {
            channel: cs.channel,
          });
        this.apply(p, cs, e);
        if (p.sync) break;
      }
    });
    this.stats.epochs.push(e);
  }

  private apply(p: ChannelPacket, cs: ChannelStats, e: EpochStats): void {
    const h = p.header;
    const wire = h.headerBytes + p.payloadBytes;
    this.packetNums.add(Number(h.packetNum));
    cs.packets++;
    cs.wireBytes += wire;
    cs.headerBytes += h.headerBytes;
    cs.payloadBytes += p.payloadBytes;
    e.packets++;
    e.wireBytes += wire;
    e.payloadBytes += p.payloadBytes;
    if (p.sync) {
      cs.syncPackets++;
      if (h.normalPages > 0) cs.syncWithPages++;
    }
    if (h.normalPages === 0) return;
    cs.compression = this.sources[this.stats.channels.indexOf(cs)]!.source.reader.compression;
    const block = this.blocks.get(h.ramblock);
    if (!block) throw new MigstreamError('UNKNOWN_RAMBLOCK', p.offset + 64, `multifd: unknown ram block ${h.ramblock}`, { channel: cs.channel });
    const ps = this.pageSize;
    h.offsets.forEach((offset, k) => {
      const at = p.offset + 320 + 8 * k;
      if (offset > block.length - ps)
        throw new MigstreamError('BAD_OFFSET', at, `multifd: offset too long ${offset} (max ${block.length})`, { channel: cs.channel, ramBlock: block.idstr });
      if (offset % ps !== 0)
        throw new MigstreamError('BAD_OFFSET', at, `multifd: offset ${offset} is not page-aligned`, { channel: cs.channel, ramBlock: block.idstr });
      const key = `${block.idstr}\0${offset}`;
      if (this.seen.has(key)) e.duplicates++;
      else this.seen.add(key);
      cs.pages++;
      e.pages++;
      this.handler({
        type: 'page',
        kind: 'normal',
        block,
        offset,
        pageSize: ps,
        fill: 0,
        data: p.pages.subarray(k * ps, (k + 1) * ps),
        dataOffset: p.offset + h.headerBytes + (p.payloadBytes === h.normalPages * ps ? k * ps : 0),
        wireBytes: Math.floor(wire / h.normalPages) + (k === 0 ? wire % h.normalPages : 0),
      });
    });
  }

  /**
   * After the last EOS a channel may still hold one empty packet: when a SYNC
   * request finds the channel's page job unsent, the pages go out flagged
   * SYNC and the job counter sends one more, empty, packet with the same
   * number (multifd_send_thread). Anything with pages is trailing data.
   */
  private finish(): void {
    this.sources.forEach((_, i) => {
      for (;;) {
        const p = this.nextPacket(i);
        if (!p) return;
        const cs = this.stats.channels[i]!;
        if (p.header.normalPages > 0 || p.sync)
          throw new MigstreamError(
            'TRAILING_DATA',
            p.offset,
            `a packet after the channel's last SYNC (the main channel has ${this.stats.epochs.length} RAM sections)`,
            {
              channel: cs.channel,
            },
          );
        cs.packets++;
        cs.wireBytes += p.header.headerBytes;
        cs.headerBytes += p.header.headerBytes;
      }
    });
    // A SYNC request that finds a page job unsent overwrites the job's number (multifd_send_sync_main): the pages go out
    // in the SYNC packet and their own number never appears. More gaps than such packets: a channel is missing.
    const missing: number[] = [];
    const max = Math.max(-1, ...this.packetNums);
    for (let n = 0; n <= max; n++) if (!this.packetNums.has(n)) missing.push(n);
    const overwritten = this.stats.channels.reduce((n, c) => n + c.syncWithPages, 0);
    if (missing.length > overwritten)
      throw new MigstreamError(
        'TRUNCATED',
        this.sources[0]?.source.reader.received ?? 0,
        `multifd: ${missing.length} packet numbers of 0..${max} (${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}) are in none of the ${this.sources.length} channels given, more than the ${overwritten} SYNC packets with pages explain: a channel is missing`,
      );
  }
}
