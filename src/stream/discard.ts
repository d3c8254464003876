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

const EMPTY = new Uint8Array(0);

/** Applies a discarded range to a RAM sink as zero pages (a store skips pages it never wrote). */
export function applyDiscard(sink: RamSink, r: DiscardRange, pageSize: number): void {
  for (let offset = r.start; offset < r.start + r.length; offset += pageSize) {
    sink.apply({ type: 'page', kind: 'zero', block: r.block, offset, pageSize, fill: 0, data: EMPTY, dataOffset: 0, wireBytes: 0 });
  }
}
