import type { ChannelDeflater, ChannelInflater } from './channel-codecs.js';

/**
 * migstream's own multifd form between two relays, `zstd-dedup`: a page whose exact bytes this channel
 * already sent (one of its last `window` distinct pages) goes as an 8-byte reference; the other pages go
 * through the channel's compressor as before. In the Linux guest's channels about one page in seven is
 * such a repeat (a page dirtied and resent unchanged, the same bytes at two addresses), and finding
 * them costs a hash per page, less than zstd's long-distance matching does.
 *
 * Payload of a packet of n pages: be32 r (references), r × (be32 k, be32 seq): page k of the packet is
 * distinct page number seq of the channel (numbered from 0 in the order they were sent, references not
 * counted; k ascending), then the compressed n - r other pages, in order (nothing when r = n).
 * "Pages" are 4 KiB blocks whatever the guest's page size (a packet's bytes are whole blocks).
 */

/** Distinct pages each end keeps per channel: 128 MiB of 4 KiB pages, as `--multifd-long`'s window. */
export const DEDUP_WINDOW_PAGES = 1 << 15;
const BLOCK = 4096;
/** The deflater's copies are allocated a slab (256 pages) at a time, as pages arrive. */
const SLAB_SHIFT = 8;

/** The inflater's last `window` distinct pages, by sequence number: views of the pages it returned, no copies. */
class PageRing {
  private readonly views: Uint8Array[] = [];
  /** Distinct pages stored so far (the next one's sequence number). */
  next = 0;

  constructor(readonly window: number) {}

  /** Whether page `seq` is still held. */
  holds(seq: number): boolean {
    return seq < this.next && this.next - seq <= this.window;
  }

  page(seq: number): Uint8Array {
    return this.views[seq % this.window]!;
  }

  /** Holds `page` (not copied) as the next distinct page; returns its sequence number. */
  add(page: Uint8Array): number {
    const seq = this.next++;
    this.views[seq % this.window] = page;
    return seq;
  }
}

/** Copies of pages in slabs allocated as pages arrive, slots reused round the window. */
class PageSlabs {
  private readonly slabs: Uint8Array[] = [];
  /** The same slabs as words, for comparing pages without a view per compare. */
  private readonly words: Uint32Array[] = [];

  constructor(readonly window: number) {}

  /** Keeps a copy of `page` as distinct page `seq` (its slot's previous page is gone). */
  copy(seq: number, page: Uint8Array): void {
    const slot = seq % this.window;
    const s = slot >>> SLAB_SHIFT;
    if (!this.slabs[s]) {
      this.slabs[s] = new Uint8Array(Math.min(1 << SLAB_SHIFT, this.window) * BLOCK);
      this.words[s] = new Uint32Array(this.slabs[s].buffer);
    }
    this.slabs[s]!.set(page, (slot & ((1 << SLAB_SHIFT) - 1)) * BLOCK);
  }

  /** Whether the copy of page `seq` has the words of `w` from `from` on (one page). */
  same(seq: number, w: Uint32Array, from: number): boolean {
    const slot = seq % this.window;
    const mine = this.words[slot >>> SLAB_SHIFT]!;
    const at = (slot & ((1 << SLAB_SHIFT) - 1)) * (BLOCK / 4);
    for (let i = 0; i < BLOCK / 4; i++) if (mine[at + i] !== w[from + i]) return false;
    return true;
  }
}

/** 32-bit hash of a page's words (FNV-1a over 32-bit words): a candidate only; the bytes are compared before a page becomes a reference. */
function pageHash(w: Uint32Array, from: number): number {
  let h = 0x811c9dc5;
  for (let i = from, end = from + BLOCK / 4; i < end; i++) h = Math.imul(h ^ w[i]!, 0x01000193);
  return h >>> 0;
}

export class DedupDeflater implements ChannelDeflater {
  /** The deflater's own copies of the pages it indexes (a packet's pages are the reader's, reused after the packet). */
  private readonly slabs: PageSlabs;
  /** Distinct pages sent so far (the next one's sequence number). */
  private next = 0;
  /** hash → sequence number of the last distinct page with that hash; slotHash: each window slot's hash (dropped when evicted). */
  private readonly byHash = new Map<number, number>();
  private readonly slotHash: Uint32Array;
  private scratch = new Uint8Array(0);

  constructor(
    private readonly inner: ChannelDeflater,
    private readonly window = DEDUP_WINDOW_PAGES,
  ) {
    this.slabs = new PageSlabs(window);
    this.slotHash = new Uint32Array(window);
  }

  deflate(pages: Uint8Array): Uint8Array {
    const n = pages.length / BLOCK;
    if (!Number.isInteger(n)) throw new Error(`zstd-dedup: ${pages.length} bytes are not whole ${BLOCK}-byte pages`);
    // pages start 4-byte aligned in a channel (64-byte handshake, 1,344-byte headers); else hash a copy
    const src = pages.byteOffset % 4 === 0 ? pages : pages.slice();
    const words = new Uint32Array(src.buffer, src.byteOffset, src.length >>> 2);
    const refs: number[] = [];
    const unique: number[] = [];
    for (let k = 0; k < n; k++) {
      const from = (k * BLOCK) >>> 2;
      const h = pageHash(words, from);
      const seq = this.byHash.get(h);
      if (seq !== undefined && this.next - seq <= this.window && this.slabs.same(seq, words, from)) {
        refs.push(k, seq);
        continue;
      }
      const slot = this.next % this.window;
      // the page about to be overwritten leaves the index
      if (this.next >= this.window && this.byHash.get(this.slotHash[slot]!) === this.next - this.window) this.byHash.delete(this.slotHash[slot]!);
      this.slabs.copy(this.next, src.subarray(k * BLOCK, (k + 1) * BLOCK));
      this.byHash.set(h, this.next++);
      this.slotHash[slot] = h;
      unique.push(k);
    }
    const r = refs.length / 2;
    let body: Uint8Array = new Uint8Array(0);
    if (r === 0) body = this.inner.deflate(src);
    else if (unique.length > 0) {
      if (this.scratch.length < unique.length * BLOCK) this.scratch = new Uint8Array(n * BLOCK);
      const rest = this.scratch.subarray(0, unique.length * BLOCK);
      unique.forEach((k, i) => rest.set(src.subarray(k * BLOCK, (k + 1) * BLOCK), i * BLOCK));
      body = this.inner.deflate(rest);
    }
    const out = new Uint8Array(4 + 8 * r + body.length);
    const v = new DataView(out.buffer);
    v.setUint32(0, r);
    for (let i = 0; i < r; i++) {
      v.setUint32(4 + 8 * i, refs[2 * i]!);
      v.setUint32(8 + 8 * i, refs[2 * i + 1]!);
    }
    out.set(body, 4 + 8 * r);
    return out;
  }
}

/**
 * The ring holds views of the pages it returned (no copy of its own): they are not `fresh`, so a relay
 * copies them before handing them on (a worker transfers its output, which would take them from the ring).
 */
export class DedupInflater implements ChannelInflater {
  private readonly ring: PageRing;

  constructor(
    private readonly inner: ChannelInflater,
    window = DEDUP_WINDOW_PAGES,
  ) {
    this.ring = new PageRing(window);
  }

  inflate(payload: Uint8Array, expected: number): Uint8Array {
    const n = expected / BLOCK;
    if (!Number.isInteger(n)) throw new Error(`zstd-dedup: ${expected} bytes are not whole ${BLOCK}-byte pages`);
    if (payload.length < 4) throw new Error(`zstd-dedup: a ${payload.length}-byte payload has no reference count`);
    const v = new DataView(payload.buffer, payload.byteOffset, payload.length);
    const r = v.getUint32(0);
    if (r > n) throw new Error(`zstd-dedup: ${r} references in a packet of ${n} pages`);
    if (payload.length < 4 + 8 * r) throw new Error(`zstd-dedup: a ${payload.length}-byte payload ends inside its ${r} references`);
    const body = payload.subarray(4 + 8 * r);
    let distinct: Uint8Array = new Uint8Array(0);
    if (r < n) distinct = this.inner.inflate(body, (n - r) * BLOCK);
    else if (body.length > 0) throw new Error(`zstd-dedup: ${body.length} bytes after the references of a packet of references only`);
    const ring = this.ring;
    if (r === 0 && this.inner.fresh) {
      // the inner inflater's buffer is this packet's own: the ring keeps it
      for (let k = 0; k < n; k++) ring.add(distinct.subarray(k * BLOCK, (k + 1) * BLOCK));
      return distinct;
    }
    const out = new Uint8Array(expected);
    let ref = 0;
    let u = 0;
    let prevK = -1;
    for (let k = 0; k < n; k++) {
      const nextK = ref < r ? v.getUint32(4 + 8 * ref) : n;
      if (ref < r && (nextK <= prevK || nextK >= n))
        throw new Error(`zstd-dedup: reference ${ref} (at payload byte ${4 + 8 * ref}) names page ${nextK}, not a later page of the ${n}`);
      const page = out.subarray(k * BLOCK, (k + 1) * BLOCK);
      if (k === nextK) {
        const seq = v.getUint32(8 + 8 * ref);
        if (!ring.holds(seq))
          throw new Error(
            `zstd-dedup: reference ${ref} (at payload byte ${8 + 8 * ref}) names distinct page ${seq}; this channel holds ${Math.max(0, ring.next - ring.window)}..${ring.next - 1}`,
          );
        page.set(ring.page(seq));
        prevK = k;
        ref++;
        continue;
      }
      page.set(distinct.subarray(u * BLOCK, (u + 1) * BLOCK));
      u++;
      ring.add(page);
    }
    return out;
  }
}
