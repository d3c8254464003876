import { MigstreamError } from '../codec/errors.js';
import { isZeroPage } from '../codec/zero.js';
import type { StreamEvent } from '../stream/events.js';
import { RamImage } from '../stream/ram-image.js';
import { Transcoder, type TranscodeOptions } from '../stream/transcode.js';
import { type ChannelDeflater, channelDeflater } from './channel-codecs.js';
import { COMPRESSION_FLAGS, FLAG_SYNC, MULTIFD_PACKET_BYTES, type MultifdCompression, writeInit, writePacketHeader } from './format.js';

export interface SplitOptions {
  channels: number;
  compression?: MultifdCompression;
  /** zlib level (default 1, QEMU's default). */
  level?: number;
  /** The handshake's uuid: a 7.2 destination requires its own (all zero unless started with -uuid). */
  uuid?: Uint8Array;
  pageSize?: number;
  /** Options of the main channel's transcoder (RAM limits); compression and XBZRLE do not apply. */
  transcode?: Pick<TranscodeOptions, 'maxRamBytes' | 'ramStore' | 'diskSizes'>;
}

interface Pending {
  block: string;
  offsets: number[];
  pages: Uint8Array[];
}

/**
 * Turns one stream's events into QEMU 7.2's multifd form: the main channel
 * (a plain transcode carrying the zero pages, as 7.2 does) and N channels
 * carrying every other page in packets of up to 128 pages, each channel's
 * payload compressed by its own stream state. At every EOS of the main
 * channel each channel gets a SYNC packet first (multifd_send_sync_main).
 * A page always goes to the same channel (by its 512 KiB region), so a page
 * sent twice in one epoch is applied in order; a page the main channel
 * zeroed in an epoch cannot go to a channel later in the same epoch (the
 * destination applies the two connections concurrently): that is refused.
 */
export class MultifdSplitter {
  private readonly main: Transcoder;
  private readonly ram: RamImage;
  private readonly pageSize: number;
  private readonly perPacket: number;
  private readonly deflaters: ChannelDeflater[];
  private readonly pending: (Pending | undefined)[];
  private readonly flags: number;
  private packetNum = 0n;
  /** Pages the main channel / the channels touched in the current epoch, by "block\0offset". */
  private mainTouched = new Set<string>();
  private channelTouched = new Set<string>();
  /** Counters: pages and packets per channel. */
  readonly counts: { pages: number; packets: number; wireBytes: number }[];
  private started = false;

  constructor(
    writeMain: (chunk: Uint8Array) => void,
    private readonly writeChannel: (index: number, chunk: Uint8Array) => void,
    private readonly o: SplitOptions,
  ) {
    if (!Number.isInteger(o.channels) || o.channels < 1 || o.channels > 255) throw new RangeError(`multifd channels must be 1..255, not ${o.channels}`);
    this.pageSize = o.pageSize ?? 4096;
    this.perPacket = MULTIFD_PACKET_BYTES / this.pageSize;
    this.main = new Transcoder(writeMain, { ...o.transcode, pageSize: this.pageSize });
    this.ram = new RamImage(o.transcode?.maxRamBytes);
    const c = o.compression ?? 'none';
    this.flags = COMPRESSION_FLAGS[c];
    this.deflaters = Array.from({ length: o.channels }, () => channelDeflater(c, o.level ?? 1));
    this.pending = Array.from({ length: o.channels }, () => undefined);
    this.counts = Array.from({ length: o.channels }, () => ({ pages: 0, packets: 0, wireBytes: 0 }));
  }

  private out(i: number, b: Uint8Array): void {
    this.counts[i]!.wireBytes += b.length;
    this.writeChannel(i, b);
  }

  /** The channel handshakes (written once, before anything else on the channels). */
  private start(): void {
    if (this.started) return;
    this.started = true;
    for (let i = 0; i < this.o.channels; i++) this.out(i, writeInit({ uuid: this.o.uuid ?? new Uint8Array(16), id: i }));
  }

  private channelOf(block: string, offset: number): number {
    let h = 0;
    for (let k = 0; k < block.length; k++) h = (h * 31 + block.charCodeAt(k)) >>> 0;
    return (h + Math.floor(offset / MULTIFD_PACKET_BYTES)) % this.o.channels;
  }

  private sendPacket(i: number, sync: boolean): void {
    const p = this.pending[i];
    this.pending[i] = undefined;
    const n = p?.offsets.length ?? 0;
    let payload = new Uint8Array(0) as Uint8Array;
    if (p && n > 0) {
      const raw = new Uint8Array(n * this.pageSize);
      p.pages.forEach((pg, k) => raw.set(pg, k * this.pageSize));
      payload = this.deflaters[i]!.deflate(raw);
      this.counts[i]!.pages += n;
    }
    const header = writePacketHeader({
      flags: (sync ? FLAG_SYNC : 0) | (n > 0 ? this.flags : 0),
      pagesAlloc: this.perPacket,
      offsets: p?.offsets ?? [],
      nextPacketSize: payload.length,
      packetNum: this.packetNum++,
      ramblock: p?.block ?? '',
    });
    this.counts[i]!.packets++;
    this.out(i, header);
    if (payload.length > 0) this.out(i, payload);
  }

  private queue(block: string, offset: number, page: Uint8Array): void {
    const i = this.channelOf(block, offset);
    let p = this.pending[i];
    if (p && p.block !== block) {
      this.sendPacket(i, false);
      p = undefined;
    }
    if (!p) {
      p = { block, offsets: [], pages: [] };
      this.pending[i] = p;
    }
    p.offsets.push(offset);
    p.pages.push(page.slice());
    if (p.offsets.length === this.perPacket) this.sendPacket(i, false);
  }

  readonly handle = (ev: StreamEvent): void => {
    switch (ev.type) {
      case 'ram-blocks':
        this.start();
        this.ram.setBlocks(ev.blocks, ev.offset);
        break;
      case 'page': {
        this.ram.apply(ev);
        const page = this.ram.page(ev.block.idstr, ev.offset, ev.pageSize);
        const key = `${ev.block.idstr}\0${ev.offset}`;
        if (isZeroPage(page) && !this.channelTouched.has(key)) {
          this.mainTouched.add(key);
          this.main.handle({ ...ev, kind: 'zero', fill: 0, data: new Uint8Array(0) });
          return;
        }
        if (this.mainTouched.has(key))
          throw new MigstreamError(
            'UNSUPPORTED',
            ev.dataOffset,
            `multifd: page ${ev.offset} was zeroed on the main channel earlier in this RAM section and changes again: the destination could apply the two out of order`,
            { ramBlock: ev.block.idstr },
          );
        this.channelTouched.add(key);
        this.queue(ev.block.idstr, ev.offset, page);
        return;
      }
      case 'iteration-end':
        this.start();
        for (let i = 0; i < this.o.channels; i++) {
          if (this.pending[i]) this.sendPacket(i, false);
          this.sendPacket(i, true);
        }
        this.mainTouched.clear();
        this.channelTouched.clear();
        break;
      default:
        break;
    }
    this.main.handle(ev);
  };
}
