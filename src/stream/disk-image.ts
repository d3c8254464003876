import type { BlockChunkEvent } from './events.js';

interface Chunk {
  length: number;
  /** null: a zero chunk. */
  data: Uint8Array | null;
}

/**
 * Block-migration disks held in memory, sparse: only chunks that arrived are
 * stored, keyed by byte offset. A later chunk over the same range wins.
 */
export class DiskImage {
  readonly devices = new Map<string, Map<number, Chunk>>();

  chunk(ev: BlockChunkEvent): void {
    let chunks = this.devices.get(ev.device);
    if (!chunks) {
      chunks = new Map();
      this.devices.set(ev.device, chunks);
    }
    const at = ev.sector * 512;
    chunks.delete(at); // re-insert: Map order is arrival order, which read() replays
    chunks.set(at, { length: ev.length, data: ev.zero ? null : ev.data.slice() });
  }

  /** Bytes [start, start+out.length) of `device` into `out` (unsent ranges read as zeros). */
  read(device: string, start: number, out: Uint8Array): void {
    out.fill(0);
    const end = start + out.length;
    // Arrival order, so that a later chunk overlapping an earlier one of another size wins.
    for (const [at, c] of this.devices.get(device) ?? []) {
      if (at >= end || at + c.length <= start) continue;
      const from = Math.max(at, start);
      const to = Math.min(at + c.length, end);
      if (c.data) out.set(c.data.subarray(from - at, to - at), from - start);
      else out.fill(0, from - start, to - start);
    }
  }

  /** End of the highest chunk of `device`. */
  extent(device: string): number {
    let max = 0;
    for (const [at, c] of this.devices.get(device) ?? []) max = Math.max(max, at + c.length);
    return max;
  }
}
