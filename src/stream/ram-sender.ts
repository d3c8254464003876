import { isZeroPage } from '../codec/zero.js';
import { xbzrleEncode } from '../xbzrle/encode.js';
import type { PageCache } from '../xbzrle/page-cache.js';
import type { RamRecordWriter } from './encoder.js';
import type { RamBlockInfo } from './events.js';
import { IterationDigests, type DigestAlgorithm } from './digest.js';

export type { RamRecordWriter };

const TEXT = new TextEncoder();

/** Per-iteration XBZRLE counters, in the shape of QEMU's `info migrate` (query-migrate `xbzrle-cache`). */
export interface XbzrleIterationStats {
  iteration: number;
  /** Cache hits: XBZRLE records + overflows + unchanged pages (which send nothing). */
  pages: number;
  /** XBZRLE bytes as QEMU counts them: record bytes without the 8-byte word; overflows count a page each. */
  bytes: number;
  cacheMiss: number;
  /** Misses / all pages sent in the iteration. */
  cacheMissRate: number;
  overflow: number;
  /** pages × page size / bytes. */
  encodingRate: number;
  /** Records written in the iteration, by kind. */
  records: { zero: number; normal: number; xbzrle: number; unchanged: number; compressed: number };
}

export interface RamSenderOptions {
  /** XBZRLE page cache; without one every page goes out as ZERO or PAGE. */
  cache?: PageCache;
  /**
   * Compress non-zero pages with the writer's compressor (compressPage) until
   * XBZRLE starts, as QEMU 7.2 does. With "zlib" (QEMU's compress
   * capability) a RAMBlock's first page after a block change goes out the
   * normal way, so every COMPRESS_PAGE record has CONTINUE set.
   */
  compress?: 'zlib' | 'lz4';
  /**
   * Per-iteration digests (extension "iteration-digests"; the caller declares
   * it in the manifest): every record sent is hashed with the page it leaves
   * behind, and endIteration() writes one digest record per RAMBlock that
   * had records, before the caller's RAM EOS.
   */
  digest?: DigestAlgorithm;
}

/**
 * Decides how each dirty page goes on the wire, the way QEMU 7.2's
 * ram_save_target_page does: a zero page is a ZERO record (and refreshes the
 * cache); with XBZRLE, a page seen before is looked up in the cache: a miss is
 * inserted and sent as PAGE, a hit is sent as an XBZRLE delta, or as PAGE when
 * the delta overflows, or not at all when the page is unchanged.
 */
export class RamSender {
  private readonly cache: PageCache | undefined;
  private readonly compress: 'zlib' | 'lz4' | undefined;
  private readonly digests: IterationDigests | undefined;
  private readonly bases = new Map<string, number>();
  private readonly encoded: Uint8Array;
  /** A page of zeros, never written: send() takes it as zero without scanning it (a transcoder's ZERO records). */
  readonly zeroPage: Uint8Array;
  private stats!: XbzrleIterationStats;
  readonly history: XbzrleIterationStats[] = [];

  constructor(
    private readonly enc: RamRecordWriter,
    options: RamSenderOptions = {},
  ) {
    this.cache = options.cache;
    this.compress = options.compress;
    this.digests = options.digest ? new IterationDigests(options.digest) : undefined;
    this.encoded = new Uint8Array(enc.pageSize);
    this.zeroPage = new Uint8Array(enc.pageSize);
    this.beginIteration();
  }

  /**
   * Lays the RAMBlocks out in one address space for the cache key, each base
   * aligned to 64 pages like QEMU's ram_addr offsets (QEMU's real offsets
   * follow creation order, which the stream does not carry).
   */
  setBlocks(blocks: RamBlockInfo[]): void {
    let next = 0;
    const align = 64 * this.enc.pageSize;
    for (const b of blocks) {
      this.bases.set(b.idstr, next);
      next += Math.ceil(b.length / align) * align;
    }
  }

  /**
   * Sends one page. `resend` says the page was sent before (QEMU enables
   * XBZRLE only after the first full pass); `lastStage` is the completion
   * stage, where QEMU no longer updates the cache.
   */
  send(idstr: string, offset: number, page: Uint8Array, resend: boolean, lastStage = false): void {
    const cache = this.cache;
    const r = this.stats.records;
    // Every record below leaves `page` in the receiver's RAM (digests count records: an unchanged page sends none).
    const digests = this.digests;
    if (page === this.zeroPage || isZeroPage(page)) {
      digests?.add(idstr, offset, page);
      this.enc.zeroPage(idstr, offset);
      r.zero++;
      if (cache && resend) cache.insert(this.addr(idstr, offset), this.zeroPage);
      return;
    }
    if (this.compress && (!cache || !resend)) {
      // QEMU's ram_save_target_page: compression only until XBZRLE starts; a block's first page is sent plain (flush_compressed_data)
      if (this.compress === 'zlib' && !this.enc.continues(idstr)) {
        digests?.add(idstr, offset, page);
        this.enc.page(idstr, offset, page);
        r.normal++;
      } else {
        digests?.add(idstr, offset, page);
        this.enc.compressPage(idstr, offset, page);
        r.compressed++;
      }
      return;
    }
    if (!cache || !resend) {
      digests?.add(idstr, offset, page);
      this.enc.page(idstr, offset, page);
      r.normal++;
      return;
    }
    const addr = this.addr(idstr, offset);
    const cached = cache.lookup(addr);
    if (!cached) {
      this.stats.cacheMiss++;
      if (!lastStage) cache.insert(addr, page);
      digests?.add(idstr, offset, page);
      this.enc.page(idstr, offset, page);
      r.normal++;
      return;
    }
    this.stats.pages++;
    const len = xbzrleEncode(cached, page, this.encoded);
    if (len === 0) {
      r.unchanged++;
      return;
    }
    if (!lastStage) cached.set(page);
    if (len < 0) {
      this.stats.overflow++;
      this.stats.bytes += page.length;
      digests?.add(idstr, offset, page);
      this.enc.page(idstr, offset, page);
      r.normal++;
      return;
    }
    // QEMU counts the record without its 8-byte word: [str8 idstr] + flag + be16 length + data
    this.stats.bytes += 3 + len + (this.enc.continues(idstr) ? 0 : 1 + TEXT.encode(idstr).length);
    digests?.add(idstr, offset, page);
    this.enc.xbzrlePage(idstr, offset, this.encoded.subarray(0, len));
    r.xbzrle++;
  }

  /**
   * Closes the iteration's counters (and ages the cache: one dirty sync per
   * iteration). With digests, writes the iteration's digest records: call it
   * before the RAM EOS.
   */
  endIteration(): XbzrleIterationStats {
    const d = this.digests;
    if (d) {
      for (const idstr of d.pending()) {
        const { count, digest } = d.take(idstr);
        this.enc.ramDigest(idstr, count, digest);
      }
    }
    const s = this.stats;
    const r = s.records;
    const sent = r.zero + r.normal + r.xbzrle + r.unchanged + r.compressed;
    s.cacheMissRate = sent === 0 ? 0 : s.cacheMiss / sent;
    s.encodingRate = s.bytes === 0 ? 0 : (s.pages * this.enc.pageSize) / s.bytes;
    this.history.push(s);
    this.cache?.sync();
    this.beginIteration();
    return s;
  }

  private beginIteration(): void {
    this.stats = {
      iteration: this.history.length,
      pages: 0,
      bytes: 0,
      cacheMiss: 0,
      cacheMissRate: 0,
      overflow: 0,
      encodingRate: 0,
      records: { zero: 0, normal: 0, xbzrle: 0, unchanged: 0, compressed: 0 },
    };
  }

  private addr(idstr: string, offset: number): number {
    return (this.bases.get(idstr) ?? 0) + offset;
  }
}
