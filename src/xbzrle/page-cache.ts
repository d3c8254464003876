/**
 * The sender-side XBZRLE page cache: the copy of each page as last sent, so a
 * re-dirtied page can go out as a delta. Keys are page addresses in one flat
 * space (RAMBlock base + offset). Two policies share this interface so they
 * can run on the same trace.
 */
export interface PageCache {
  readonly policy: 'lru' | 'qemu';
  readonly pageSize: number;
  /** The cached copy of `addr` (a view into the cache), or undefined. A hit refreshes the entry. */
  lookup(addr: number): Uint8Array | undefined;
  /** Stores `data` as the copy of `addr`. Returns false when the policy refuses the insert. */
  insert(addr: number, data: Uint8Array): boolean;
  /** A dirty-bitmap sync happened (QEMU ages entries by sync count). */
  sync(): void;
  /** Pages currently held. */
  readonly size: number;
}

/**
 * LRU with a byte budget (our default): any page can enter, the least
 * recently used one leaves. Page buffers are recycled, so a full cache
 * allocates nothing per page.
 */
export class LruPageCache implements PageCache {
  readonly policy = 'lru';
  private readonly entries = new Map<number, Uint8Array>();
  private readonly capacity: number;

  /** @param budgetBytes cache size in bytes; holds floor(budget / pageSize) pages. */
  constructor(
    budgetBytes: number,
    readonly pageSize = 4096,
  ) {
    this.capacity = Math.floor(budgetBytes / pageSize);
    if (this.capacity < 1) throw new RangeError(`cache budget ${budgetBytes} holds no ${pageSize}-byte page`);
  }

  get size(): number {
    return this.entries.size;
  }

  lookup(addr: number): Uint8Array | undefined {
    const data = this.entries.get(addr);
    if (data) {
      // Map iteration order is insertion order: re-inserting makes it most recent.
      this.entries.delete(addr);
      this.entries.set(addr, data);
    }
    return data;
  }

  insert(addr: number, data: Uint8Array): boolean {
    let buf = this.entries.get(addr);
    if (buf) {
      this.entries.delete(addr);
    } else if (this.entries.size >= this.capacity) {
      const oldest = this.entries.keys().next().value as number;
      buf = this.entries.get(oldest);
      this.entries.delete(oldest);
    }
    buf ??= new Uint8Array(this.pageSize);
    buf.set(data);
    this.entries.set(addr, buf);
    return true;
  }

  sync(): void {}
}

/**
 * A model of QEMU 7.2's own cache (migration/page_cache.c): direct-mapped,
 * power-of-two slots, slot = (addr / pageSize) & (slots - 1); an occupied
 * slot goes to another page only when untouched for 2 dirty syncs.
 */
export class QemuPageCache implements PageCache {
  readonly policy = 'qemu';
  private readonly slots: number;
  private readonly addrs: Float64Array;
  private readonly ages: Float64Array;
  private data: Uint8Array | undefined;
  /** QEMU's dirty_sync_count: 1 after the setup sync. */
  private age = 1;
  private used = 0;

  /** @param sizeBytes xbzrle-cache-size: a power of two, at least one page (QEMU rejects others). */
  constructor(
    sizeBytes: number,
    readonly pageSize = 4096,
  ) {
    const slots = sizeBytes / pageSize;
    if (!Number.isInteger(slots) || slots < 1 || (slots & (slots - 1)) !== 0) {
      throw new RangeError(`QEMU's cache size must be a power of two of at least ${pageSize} bytes, got ${sizeBytes}`);
    }
    this.slots = slots;
    this.addrs = new Float64Array(slots).fill(-1);
    this.ages = new Float64Array(slots);
  }

  get size(): number {
    return this.used;
  }

  private slotOf(addr: number): number {
    return Math.floor(addr / this.pageSize) & (this.slots - 1);
  }

  lookup(addr: number): Uint8Array | undefined {
    const slot = this.slotOf(addr);
    if (this.addrs[slot] !== addr) return undefined;
    this.ages[slot] = this.age;
    return this.data!.subarray(slot * this.pageSize, (slot + 1) * this.pageSize);
  }

  insert(addr: number, page: Uint8Array): boolean {
    const slot = this.slotOf(addr);
    const held = this.addrs[slot]!;
    if (held !== -1 && held !== addr && this.ages[slot]! + 2 > this.age) return false;
    this.data ??= new Uint8Array(this.slots * this.pageSize);
    this.data.set(page, slot * this.pageSize);
    if (held === -1) this.used++;
    this.addrs[slot] = addr;
    this.ages[slot] = this.age;
    return true;
  }

  sync(): void {
    this.age++;
  }
}

export type CachePolicy = 'lru' | 'qemu';

export function createPageCache(policy: CachePolicy, sizeBytes: number, pageSize = 4096): PageCache {
  return policy === 'qemu' ? new QemuPageCache(sizeBytes, pageSize) : new LruPageCache(sizeBytes, pageSize);
}
