import { equalBytes } from '../codec/concat.js';
import { MigstreamError } from '../codec/errors.js';

/** A byte range [offset, offset + length) of a disk. */
export interface Extent {
  offset: number;
  length: number;
}

/**
 * A disk as the block-migration sender sees it: its content now, and what
 * changed since the last iteration. Iteration 0 is the bulk copy.
 */
export interface DiskSource {
  readonly device: string;
  readonly size: number;
  /** Current bytes [offset, offset + out.length) into `out`. */
  read(offset: number, out: Uint8Array): void;
  /** Moves to the next iteration; returns the byte ranges written meanwhile. */
  advance(): Extent[];
  /** Iterations after the bulk one that this source can advance through. */
  readonly iterations: number;
}

/** A disk given as one image per iteration (all the same size). */
export class SnapshotDiskSource implements DiskSource {
  private at = 0;
  readonly size: number;

  constructor(
    readonly device: string,
    private readonly images: Uint8Array[],
  ) {
    this.size = images[0]?.length ?? 0;
    if (images.some((i) => i.length !== this.size)) throw new RangeError(`disk ${device}: snapshots differ in size`);
  }

  get iterations(): number {
    return this.images.length - 1;
  }

  read(offset: number, out: Uint8Array): void {
    out.set(this.images[this.at]!.subarray(offset, offset + out.length));
  }

  advance(): Extent[] {
    const prev = this.images[this.at]!;
    const next = this.images[++this.at];
    if (!next) throw new RangeError(`disk ${this.device}: no snapshot for iteration ${this.at}`);
    // Compare in 4 KiB steps: the granularity of a guest write that the dirty bitmap can see.
    const out: Extent[] = [];
    for (let off = 0; off < this.size; off += 4096) {
      const len = Math.min(4096, this.size - off);
      if (!equalBytes(prev.subarray(off, off + len), next.subarray(off, off + len))) {
        const last = out.at(-1);
        if (last && last.offset + last.length === off) last.length += len;
        else out.push({ offset: off, length: len });
      }
    }
    return out;
  }
}

/** One logged guest write. */
export interface DiskWrite {
  offset: number;
  data: Uint8Array;
}

/**
 * A disk given as a base image plus a write log grouped by iteration: the
 * writes of group k happen between iteration k and k + 1. The image is
 * updated in place.
 */
export class WriteLogDiskSource implements DiskSource {
  private at = 0;

  constructor(
    readonly device: string,
    private readonly image: Uint8Array,
    private readonly groups: DiskWrite[][],
  ) {}

  get size(): number {
    return this.image.length;
  }

  get iterations(): number {
    return this.groups.length;
  }

  read(offset: number, out: Uint8Array): void {
    out.set(this.image.subarray(offset, offset + out.length));
  }

  advance(): Extent[] {
    const group = this.groups[this.at++];
    if (!group) throw new RangeError(`disk ${this.device}: no write group for iteration ${this.at}`);
    return group.map((w) => {
      if (w.offset + w.data.length > this.image.length) {
        throw new RangeError(`disk ${this.device}: write at ${w.offset}+${w.data.length} past the end (${this.image.length})`);
      }
      this.image.set(w.data, w.offset);
      return { offset: w.offset, length: w.data.length };
    });
  }
}

const LOG_MAGIC = 0x4d53574c; // "MSWL"

/**
 * Parses a write log: be32 "MSWL", then records `be64 offset, be32 length,
 * length bytes`; a record of length 0 ends an iteration's group.
 */
export function parseWriteLog(bytes: Uint8Array): DiskWrite[][] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  if (bytes.length < 4 || dv.getUint32(0) !== LOG_MAGIC) {
    throw new MigstreamError('BAD_MAGIC', 0, 'expected a migstream write log ("MSWL")');
  }
  const groups: DiskWrite[][] = [[]];
  let p = 4;
  while (p < bytes.length) {
    if (p + 12 > bytes.length) throw new MigstreamError('TRUNCATED', bytes.length, 'expected a write-log record header');
    const offset = dv.getUint32(p) * 2 ** 32 + dv.getUint32(p + 4);
    const length = dv.getUint32(p + 8);
    p += 12;
    if (length === 0) {
      groups.push([]);
      continue;
    }
    if (p + length > bytes.length) throw new MigstreamError('TRUNCATED', bytes.length, `expected ${length} bytes of write data`);
    groups.at(-1)!.push({ offset, data: bytes.subarray(p, p + length) });
    p += length;
  }
  if (groups.at(-1)!.length === 0 && groups.length > 1) groups.pop();
  return groups;
}

/** Serialises write groups in the format parseWriteLog reads. */
export function formatWriteLog(groups: DiskWrite[][]): Uint8Array {
  const size = 4 + groups.reduce((n, g) => n + g.reduce((m, w) => m + 12 + w.data.length, 0) + 12, 0);
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, LOG_MAGIC);
  let p = 4;
  for (const g of groups) {
    for (const w of g) {
      dv.setUint32(p, Math.floor(w.offset / 2 ** 32));
      dv.setUint32(p + 4, w.offset >>> 0);
      dv.setUint32(p + 8, w.data.length);
      out.set(w.data, p + 12);
      p += 12 + w.data.length;
    }
    p += 12; // the zero-length record closing the group
  }
  return out;
}
