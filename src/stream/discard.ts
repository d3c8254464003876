import { MigstreamError } from '../codec/errors.js';
import type { RamBlockInfo, StreamEvent } from './events.js';
import type { RamSink } from './ram-image.js';

/** One range a postcopy destination throws away: bytes [start, start + length) of a RAMBlock. */
export interface DiscardRange {
  block: RamBlockInfo;
  start: number;
  length: number;
}

type CommandEvent = Extract<StreamEvent, { type: 'command' }>;

/**
 * What a command makes a QEMU 7.2 destination discard (it reads as zeros until
 * the page is sent again):
 * - POSTCOPY_ADVISE: every RAMBlock, whole (loadvm_postcopy_handle_advise →
 *   postcopy_ram_incoming_init → init_range → ram_discard_range(0, used_length));
 *   it comes before the RAM setup section, so in a stream nothing is lost yet.
 * - POSTCOPY_RAM_DISCARD: its ranges (loadvm_postcopy_ram_handle_discard →
 *   ram_discard_range → ram_block_discard_range: fallocate PUNCH_HOLE / madvise
 *   DONTNEED), the pages dirty at the switch, which the source sends again.
 * Throws what ram_discard_range rejects: an unknown block, an unaligned or overrunning range.
 */
export function discardRanges(ev: CommandEvent, blocks: ReadonlyMap<string, RamBlockInfo>, pageSize: number): DiscardRange[] {
  const info = ev.info;
  const at = ev.offset ?? 0;
  if (info?.name === 'POSTCOPY_ADVISE') return [...blocks.values()].map((block) => ({ block, start: 0, length: block.length }));
  if (info?.name !== 'POSTCOPY_RAM_DISCARD') return [];
  const block = blocks.get(info.block);
  if (!block) throw new MigstreamError('UNKNOWN_RAMBLOCK', at, `ram_discard_range: Failed to find block '${info.block}'`);
  return info.ranges.map(([start, length]) => {
    if (start % pageSize !== 0)
      throw new MigstreamError('BAD_COMMAND', at, `ram_block_discard_range: Unaligned start address: 0x${start.toString(16)}`, { ramBlock: block.idstr });
    if (length % pageSize !== 0)
      throw new MigstreamError('BAD_COMMAND', at, `ram_block_discard_range: Unaligned length: 0x${length.toString(16)}`, { ramBlock: block.idstr });
    if (start + length > block.length) {
      throw new MigstreamError(
        'BAD_COMMAND',
        at,
        `ram_block_discard_range: Overrun block '${block.idstr}' (0x${start.toString(16)}/0x${length.toString(16)}/0x${block.length.toString(16)})`,
        { ramBlock: block.idstr },
      );
    }
    return { block, start, length };
  });
}

/**
 * Pages written since their last discard, per RAMBlock: a bit per page and a
 * summary bit per 32-page word, so discarding a range costs its length / 1024
 * plus the pages actually written in it (a hostile stream of huge discard
 * ranges stays cheap; every other page is zero already).
 */
export class WrittenPages {
  private readonly blocks = new Map<string, { words: Uint32Array; summary: Uint32Array }>();

  /** (Re)sizes a block; a block declared again with another page count starts empty, like the RAM stores. */
  setBlock(idstr: string, pages: number): void {
    const old = this.blocks.get(idstr);
    const words = Math.ceil(pages / 32);
    if (old && old.words.length === words) return;
    this.blocks.set(idstr, { words: new Uint32Array(words), summary: new Uint32Array(Math.ceil(words / 32)) });
  }

  add(idstr: string, page: number): void {
    const b = this.blocks.get(idstr);
    if (!b) return;
    const w = page >>> 5;
    b.words[w]! |= 1 << (page & 31);
    b.summary[w >>> 5]! |= 1 << (w & 31);
  }

  /** Removes and returns the written pages in [first, end). */
  take(idstr: string, first: number, end: number): number[] {
    const b = this.blocks.get(idstr);
    const out: number[] = [];
    if (!b || end <= first) return out;
    const lastWord = (end - 1) >>> 5;
    for (let s = first >>> 10; s <= lastWord >>> 5; s++) {
      let bits = b.summary[s]!;
      while (bits !== 0) {
        const bit = 31 - Math.clz32(bits & -bits);
        bits &= bits - 1;
        const w = (s << 5) | bit;
        if (w < first >>> 5 || w > lastWord) continue;
        let word = b.words[w]!;
        for (let rest = word; rest !== 0; rest &= rest - 1) {
          const page = (w << 5) | (31 - Math.clz32(rest & -rest));
          if (page < first || page >= end) continue;
          out.push(page);
          word &= ~(1 << (page & 31));
        }
        b.words[w] = word;
        if (word === 0) b.summary[s]! &= ~(1 << bit);
      }
    }
    return out;
  }
}

const EMPTY = new Uint8Array(0);

/** Zeroes discarded pages in a RAM sink (zero page events at these page indexes). */
export function applyDiscard(sink: RamSink, block: RamBlockInfo, pages: number[], pageSize: number): void {
  for (const p of pages) sink.apply({ type: 'page', kind: 'zero', block, offset: p * pageSize, pageSize, fill: 0, data: EMPTY, dataOffset: 0, wireBytes: 0 });
}
