/**
 * A dirty-page trace: a series of RAM snapshots of one RAMBlock taken a known
 * guest-time interval apart. Only the per-interval dirty sets are held (a
 * bitmap and a sorted page list each); page contents are read from the
 * snapshots on demand through a DumpSource, so a series of 256 MiB dumps is
 * never in memory at once.
 */

/** Random access to the snapshots: `read` fills `out` with `count` pages of dump `dump` from `firstPage`. */
export interface DumpSource {
  readonly dumps: number;
  readonly pages: number;
  readonly pageSize: number;
  read(dump: number, firstPage: number, count: number, out: Uint8Array): void;
}

/** Snapshots already in memory (tests, small guests). */
export class MemoryDumpSource implements DumpSource {
  readonly dumps: number;
  readonly pages: number;

  constructor(
    private readonly data: Uint8Array[],
    readonly pageSize = 4096,
  ) {
    if (data.length === 0) throw new RangeError('a trace needs at least one snapshot');
    const len = data[0]!.length;
    if (len === 0 || len % pageSize !== 0) throw new RangeError(`snapshot of ${len} bytes is not a whole number of ${pageSize}-byte pages`);
    for (const [i, d] of data.entries()) if (d.length !== len) throw new RangeError(`snapshot ${i} has ${d.length} bytes, snapshot 0 has ${len}`);
    this.dumps = data.length;
    this.pages = len / pageSize;
  }

  read(dump: number, firstPage: number, count: number, out: Uint8Array): void {
    const d = this.data[dump]!;
    out.set(d.subarray(firstPage * this.pageSize, (firstPage + count) * this.pageSize));
  }
}

/** A fixed pseudo-random number in [0, 1) for the pair (a, b): a counter-based hash, no state. */
export function unitHash(a: number, b: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(b + 1, 0xc2b2ae35);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  h ^= h >>> 12;
  h = Math.imul(h, 0x297a2d39);
  h ^= h >>> 15;
  return (h >>> 0) / 4294967296;
}

/** Pages compared per read while building a trace (4 MiB of each of two snapshots at 4 KiB pages). */
const SCAN_PAGES = 1024;

export interface TraceProgress {
  (done: number, total: number): void;
}

/** Interpolation rule for dirtying inside an interval (see Trace.dirtied). */
export class Trace {
  /** dirty[k]: pages that differ between snapshot k and k+1, ascending. */
  readonly dirty: Uint32Array[];
  /** Bitmaps of the same sets, one bit per page. */
  readonly bitmaps: Uint8Array[];
  /** timesDirty[p]: in how many intervals page p changed. */
  readonly timesDirty: Uint16Array;

  private constructor(
    readonly source: DumpSource,
    /** Guest seconds between two snapshots. */
    readonly interval: number,
    dirty: Uint32Array[],
  ) {
    this.dirty = dirty;
    this.bitmaps = dirty.map((list) => {
      const bm = new Uint8Array(Math.ceil(source.pages / 8));
      for (const p of list) bm[p >>> 3]! |= 1 << (p & 7);
      return bm;
    });
    this.timesDirty = new Uint16Array(source.pages);
    for (const list of dirty) for (const p of list) this.timesDirty[p]!++;
  }

  /** Compares consecutive snapshots page by page, SCAN_PAGES at a time. */
  static build(source: DumpSource, interval: number, progress?: TraceProgress): Trace {
    if (!(interval > 0) || !Number.isFinite(interval)) throw new RangeError(`interval must be a positive number of seconds, got ${interval}`);
    const { pages, pageSize } = source;
    const a = new Uint8Array(SCAN_PAGES * pageSize);
    const b = new Uint8Array(SCAN_PAGES * pageSize);
    const dirty: Uint32Array[] = [];
    const total = (source.dumps - 1) * pages;
    for (let k = 0; k + 1 < source.dumps; k++) {
      const found: number[] = [];
      for (let first = 0; first < pages; first += SCAN_PAGES) {
        const n = Math.min(SCAN_PAGES, pages - first);
        source.read(k, first, n, a);
        source.read(k + 1, first, n, b);
        const wa = new Int32Array(a.buffer, 0, (n * pageSize) >>> 2);
        const wb = new Int32Array(b.buffer, 0, (n * pageSize) >>> 2);
        const words = pageSize >>> 2;
        for (let i = 0; i < n; i++) {
          for (let w = i * words, end = w + words; w < end; w++) {
            if (wa[w] !== wb[w]) {
              found.push(first + i);
              break;
            }
          }
        }
        progress?.(k * pages + first + n, total);
      }
      dirty.push(Uint32Array.from(found));
    }
    return new Trace(source, interval, dirty);
  }

  get intervals(): number {
    return this.dirty.length;
  }

  get pages(): number {
    return this.source.pages;
  }

  get pageSize(): number {
    return this.source.pageSize;
  }

  /** Guest seconds the trace covers. */
  get duration(): number {
    return this.intervals * this.interval;
  }

  /**
   * Whether a page that changed in every interval counts as dirtied in any
   * run of the guest, however short (written all the time), instead of once
   * per interval like the rest. Off by default: with snapshots a second or
   * more apart, "changed in every interval" rarely means "written every
   * millisecond", and treating it so makes every short round re-dirty the
   * whole hot set.
   */
  hotAlwaysDirty = false;

  /** Pages that changed in every interval: the trace's hot set. */
  isHot(page: number): boolean {
    return this.intervals > 0 && this.timesDirty[page] === this.intervals;
  }

  /**
   * Where in the trace guest time `g` falls. Past the end the trace is
   * replayed backwards, then forwards again (ping-pong), so a page's content
   * never jumps without a recorded change: position x in [0, duration].
   */
  position(g: number): number {
    const T = this.duration;
    if (T === 0) return 0;
    const m = g % (2 * T);
    return m <= T ? m : 2 * T - m;
  }

  /**
   * When inside interval k page p is taken to change, as a fraction of the
   * interval: a snapshot says only that it changed, so each changed page gets
   * one fixed, uniformly spread moment (a hash of page and interval).
   */
  changeAt(page: number, k: number): number {
    return unitHash(page, k);
  }

  /** Which snapshot holds page p's content at trace position x. */
  snapshotAt(page: number, x: number): number {
    if (this.intervals === 0) return 0;
    const k = Math.min(this.intervals - 1, Math.floor(x / this.interval));
    const bm = this.bitmaps[k]!;
    if ((bm[page >>> 3]! & (1 << (page & 7))) === 0) return k; // unchanged in k: snapshot k = k+1 for this page
    return x >= (k + this.changeAt(page, k)) * this.interval ? k + 1 : k;
  }

  /**
   * Marks in `out` (one byte per page) every page dirtied while the guest ran
   * from guest time g0 to g1, and returns how many it newly marked. A page
   * changed in interval k counts when the guest passes its change moment
   * (changeAt); with hotAlwaysDirty, a hot page counts whenever the run
   * touches an interval.
   */
  dirtied(g0: number, g1: number, out: Uint8Array): number {
    if (!(g1 > g0) || this.intervals === 0) return 0;
    const T = this.duration;
    let marked = 0;
    if (g1 - g0 >= 2 * T) {
      for (const list of this.dirty) for (const p of list) if (out[p] === 0) (out[p] = 1), marked++;
      return marked;
    }
    // Split [g0, g1) into monotone segments of trace position.
    let g = g0;
    let lap = Math.floor(g0 / T);
    while (lap > 0 && lap * T > g0) lap--;
    while (g < g1) {
      // laps are counted, not recomputed from g: (lap + 1) × T / T can round down to lap
      while ((lap + 1) * T <= g) lap++;
      const lapEnd = Math.min(g1, (lap + 1) * T);
      const forward = lap % 2 === 0;
      const at = (x: number) => Math.min(T, Math.max(0, x - lap * T));
      const xa = forward ? at(g) : T - at(g);
      const xb = forward ? at(lapEnd) : T - at(lapEnd);
      marked += this.mark(Math.min(xa, xb), Math.max(xa, xb), out);
      g = lapEnd;
      lap++;
    }
    return marked;
  }

  private mark(x0: number, x1: number, out: Uint8Array): number {
    if (!(x1 > x0)) return 0;
    const S = this.interval;
    let marked = 0;
    const kFirst = Math.max(0, Math.floor(x0 / S));
    const kLast = Math.min(this.intervals - 1, Math.ceil(x1 / S) - 1);
    for (let k = kFirst; k <= kLast; k++) {
      const lo = Math.max(0, x0 / S - k);
      const hi = Math.min(1, x1 / S - k);
      if (!(hi > lo)) continue;
      for (const p of this.dirty[k]!) {
        if (out[p] !== 0) continue;
        const u = this.changeAt(p, k);
        if ((this.hotAlwaysDirty && this.isHot(p)) || (u >= lo && u < hi)) {
          out[p] = 1;
          marked++;
        }
      }
    }
    return marked;
  }
}
