import type { PageEvent, RamBlockInfo } from '../stream/events.js';
import { applyPage } from '../stream/ram-image.js';

/** Guard bytes around each page, filled with CANARY: a decoder writing outside its page breaks them. */
export const CANARY = 0xa5;
export const GUARD = 16;

/** Guest RAM kept sparse (only pages that arrived), each page inside guard bytes. */
export class SparseRam {
  readonly pages = new Map<string, Uint8Array>();
  private lengths = new Map<string, number>();

  setBlocks(blocks: RamBlockInfo[]): void {
    // Like RamImage: a block keeps its content unless it comes back with another length.
    for (const b of blocks) {
      const old = this.lengths.get(b.idstr);
      if (old !== undefined && old !== b.length) {
        for (const key of [...this.pages.keys()]) if (key.slice(0, key.lastIndexOf('@')) === b.idstr) this.pages.delete(key);
      }
      this.lengths.set(b.idstr, b.length);
    }
  }

  apply(ev: PageEvent): void {
    const key = `${ev.block.idstr}@${ev.offset}`;
    let slab = this.pages.get(key);
    if (!slab) {
      slab = new Uint8Array(ev.pageSize + 2 * GUARD);
      slab.fill(CANARY, 0, GUARD);
      slab.fill(CANARY, GUARD + ev.pageSize);
      this.pages.set(key, slab);
    }
    applyPage(ev, slab.subarray(GUARD, GUARD + ev.pageSize));
  }

  /** A page written outside its bounds, if any. */
  guardBroken(): string | undefined {
    for (const [key, slab] of this.pages) {
      for (let i = 0; i < GUARD; i++) {
        if (slab[i] !== CANARY || slab[slab.length - 1 - i] !== CANARY) return key;
      }
    }
    return undefined;
  }

  page(key: string): Uint8Array {
    const slab = this.pages.get(key)!;
    return slab.subarray(GUARD, slab.length - GUARD);
  }
}
