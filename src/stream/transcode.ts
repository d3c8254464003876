import { createPageCache, type CachePolicy } from '../xbzrle/page-cache.js';
import { StreamDecoder, type DecoderOptions } from './decoder.js';
import { StreamEncoder } from './encoder.js';
import type { StreamEvent } from './events.js';
import { RamImage } from './ram-image.js';
import { RamSender, type XbzrleIterationStats } from './ram-sender.js';

export interface TranscodeOptions extends DecoderOptions {
  /** Most guest RAM held in memory while transcoding. Default 8 GiB. */
  maxRamBytes?: number;
  /** Re-send pages as XBZRLE deltas against a sender-side cache of this size and policy. */
  xbzrle?: { cacheBytes: number; policy?: CachePolicy };
}

/** Default XBZRLE cache: QEMU's default xbzrle-cache-size. */
export const DEFAULT_XBZRLE_CACHE = 64 << 20;

/**
 * Re-encodes a QEMU stream as plain QEMU 7.2 records: every page record is
 * applied to a RAM image (XBZRLE and compressed pages need the page's prior
 * content) and the resulting page goes out as ZERO or PAGE, in the same
 * sections. Block chunks, commands and device state pass through unchanged,
 * so real QEMU loads the result.
 */
export class Transcoder {
  readonly ram: RamImage;
  readonly sender: RamSender;
  private readonly enc: StreamEncoder;
  private ignoreShared = false;
  /** Pages sent before, per RAMBlock: XBZRLE applies only to re-sent pages, as in QEMU. */
  private readonly sent = new Map<string, Uint8Array>();
  private lastStage = false;

  constructor(out: (chunk: Uint8Array) => void, options: TranscodeOptions = {}) {
    this.ram = new RamImage(options.maxRamBytes);
    this.enc = new StreamEncoder(out, { pageSize: options.pageSize });
    const x = options.xbzrle;
    this.sender = new RamSender(this.enc, {
      cache: x ? createPageCache(x.policy ?? 'lru', x.cacheBytes, options.pageSize) : undefined,
    });
  }

  /** XBZRLE counters per RAM section (all zero without --xbzrle). */
  get xbzrleStats(): XbzrleIterationStats[] {
    return this.sender.history;
  }

  handle = (ev: StreamEvent): void => {
    const enc = this.enc;
    switch (ev.type) {
      case 'header':
        enc.header();
        return;
      case 'configuration':
        this.ignoreShared = ev.configuration.capabilities.includes('x-ignore-shared');
        enc.raw(ev.configuration.raw);
        return;
      case 'section':
        this.lastStage = ev.kind === 'end';
        if (ev.kind === 'start') enc.sectionStart(ev.section);
        else if (ev.kind === 'part') enc.sectionPart(ev.section.sectionId);
        else enc.sectionEnd(ev.section.sectionId);
        return;
      case 'section-footer':
        if (ev.present) enc.footer(ev.section.sectionId);
        return;
      case 'command':
        enc.command(ev.command, ev.payload);
        return;
      case 'ram-blocks':
        this.ram.setBlocks(ev.blocks);
        this.sender.setBlocks(ev.blocks);
        for (const b of ev.blocks) this.sent.set(b.idstr, new Uint8Array(Math.ceil(b.length / enc.pageSize / 8)));
        enc.memSize(ev.blocks, this.ignoreShared);
        return;
      case 'page': {
        this.ram.apply(ev);
        const page = this.ram.page(ev.block.idstr, ev.offset, ev.pageSize);
        const sent = this.sent.get(ev.block.idstr)!;
        const index = ev.offset / ev.pageSize;
        const resend = (sent[index >>> 3]! & (1 << (index & 7))) !== 0;
        sent[index >>> 3]! |= 1 << (index & 7);
        this.sender.send(ev.block.idstr, ev.offset, page, resend, this.lastStage);
        return;
      }
      case 'ram-flush': // a multifd sync point: meaningless without multifd, and 7.2 rejects it
        return;
      case 'iteration-end':
        this.sender.endIteration();
        enc.ramEos();
        return;
      case 'block-chunk':
        enc.blockChunk(ev.device, ev.sector, ev.zero ? undefined : ev.data);
        return;
      case 'block-progress':
        enc.blockProgress(ev.percent);
        return;
      case 'block-eos':
        enc.blockEos();
        return;
      case 'device-state':
        enc.raw(ev.bytes);
        return;
      case 'end':
        enc.flush();
        return;
    }
  };
}

/** Transcodes a whole stream held in memory. */
export function transcodeBytes(input: Uint8Array, options: TranscodeOptions = {}): Uint8Array {
  const parts: Uint8Array[] = [];
  const t = new Transcoder((c) => parts.push(c), options);
  const d = new StreamDecoder(t.handle, options);
  d.push(input);
  d.end();
  return concatChunks(parts);
}

export function concatChunks(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
