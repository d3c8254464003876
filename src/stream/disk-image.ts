import type { BlockChunkEvent } from './events.js';

/**
 * Block-migration disks held in memory, sparse: only chunks that arrived are
 * stored, keyed by byte offset. A later chunk over the same range wins.
 */
export class DiskImage {
  readonly devices = new Map<string, Map<number, Uint8Array | null>>();

  chunk(ev: BlockChunkEvent): void {
    let chunks = this.devices.get(ev.device);
    if (!chunks) {
      chunks = new Map();
      this.devices.set(ev.device, chunks);
    }
    chunks.set(ev.sector * 512, ev.zero ? null : ev.data.slice());
  }

  /** Bytes [start, start+out.length) of `device` into `out` (unsent ranges read as zeros). */
  read(device: string, start: number, out: Uint8Array): void {
    out.fill(0);
    const chunks = this.devices.get(device);
    if (!chunks) return;
    const end = start + out.length;
    for (const [at, data] of [...chunks].sort((a, b) => a[0] - b[0])) {
      const len = data ? data.length : 1 << 20;
      if (at >= end || at + len <= start) continue;
      const from = Math.max(at, start);
      const to = Math.min(at + len, end);
      if (data) out.set(data.subarray(from - at, to - at), from - start);
      else out.fill(0, from - start, to - start);
    }
  }

  /** End of the highest chunk of `device`. */
  extent(device: string): number {
    let max = 0;
    for (const [at, data] of this.devices.get(device) ?? []) max = Math.max(max, at + (data ? data.length : 1 << 20));
    return max;
  }
}
