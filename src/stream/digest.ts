import type { IHasher } from 'hash-wasm';
// hash-wasm's XXH64-only build (9 KB): its full entry (284 KB, every algorithm) cost ~100 ms of every CLI start.
import xxhash64Build from 'hash-wasm/dist/xxhash64.umd.min.js';
import { equalBytes } from '../codec/concat.js';
import { MigstreamError } from '../codec/errors.js';
import type { PageEvent, RamBlockInfo, RamDigestEvent, StreamEvent } from './events.js';
import { DIGEST_ALGORITHMS, iterationDigests } from './extensions/iteration-digests.js';
import type { RamStore } from './ram-image.js';
import { applyDiscard, discardRanges, WrittenPages } from './discard.js';
import { unreachable } from './clone-event.js';
import { declaredEntry } from './extensions/extension.js';

/**
 * Per-iteration digests (extension "iteration-digests",
 * docs/extension-format.md §5): for each RAMBlock, in each RAM section, a
 * count of the page records sent for it and XXH64 over
 * `be64 offset ‖ page content after the record` for each of them, in send
 * order. The writer (RamSender) and the reader (VerifyingRamStore) share
 * IterationDigests, so both sides hash exactly the same bytes.
 */
export type DigestAlgorithm = 'xxh64';

/**
 * hash-wasm's XXH64, instantiated once, starting when this module loads (a
 * few milliseconds; no top-level await, so the portable core loads
 * anywhere): its update() and digest() are synchronous, so the decoder's
 * synchronous event flow can hash without any async step. The stream
 * surface and migstream/node wait for it; a synchronous decode of a stream
 * with digests right at startup elsewhere awaits digestsReady() first.
 */
let xxh64Instance: IHasher | undefined;
const loading: Promise<void> = xxhash64Build.createXXHash64().then((h) => {
  xxh64Instance = h;
});
loading.catch(() => {}); // reported by digestsReady() and by the first use

/** Resolves once iteration digests can be computed (the wasm hasher is instantiated). */
export function digestsReady(): Promise<void> {
  return loading;
}

export function isDigestAlgorithm(name: string): name is DigestAlgorithm {
  return name === 'xxh64';
}

/**
 * One running hash. All of them share the single wasm instance above: the
 * state lives in the instance while one hash is being fed, and is saved
 * (84 bytes) only when another hash needs the instance.
 */
class HashState {
  saved: Uint8Array | undefined;
}

let owner: HashState | undefined;

function acquire(s: HashState): IHasher {
  if (owner !== s) {
    const xxh64 = hasher();
    if (owner) owner.saved = xxh64.save();
    if (s.saved) xxh64.load(s.saved);
    else xxh64.init();
    owner = s;
  }
  return hasher();
}

function finish(s: HashState): Uint8Array {
  const out = acquire(s).digest('binary');
  owner = undefined; // digest() ends the state: the next user starts with init() or load()
  return out;
}

/** Records are staged into one buffer and hashed 64 KiB at a time: hash-wasm's per-call cost is ~2 µs. */
const STAGE_BYTES = 64 << 10;

/**
 * Running digests of the page records of one iteration, per RAMBlock. add()
 * a record's resulting page in send order; take() a block's count and
 * digest (which starts that block over).
 */
export class IterationDigests {
  readonly algorithm: DigestAlgorithm;
  /** Digest length in bytes. */
  readonly length: number;
  private readonly blocks = new Map<string, { state: HashState; count: number }>();
  private stage = new Uint8Array(0);
  private view = new DataView(this.stage.buffer);
  private stageAt = 0;
  private stageBlock: { state: HashState; count: number } | undefined;

  constructor(algorithm: DigestAlgorithm = 'xxh64') {
    if (!isDigestAlgorithm(algorithm)) throw new RangeError(`unknown digest algorithm "${String(algorithm)}"`);
    this.algorithm = algorithm;
    this.length = DIGEST_ALGORITHMS[algorithm]!;
  }

  /** A page record for `idstr` at `offset` whose page now holds `content`. */
  add(idstr: string, offset: number, content: Uint8Array): void {
    this.slot(idstr, offset, content.length).set(content);
  }

  /** A ZERO record: the page now holds `fill` in every byte. */
  addFill(idstr: string, offset: number, fill: number, pageSize: number): void {
    this.slot(idstr, offset, pageSize).fill(fill);
  }

  /** Records counted for `idstr` since its last take(). */
  count(idstr: string): number {
    return this.blocks.get(idstr)?.count ?? 0;
  }

  /** Blocks with records not yet taken, in the order of their first record. */
  pending(): string[] {
    return [...this.blocks.keys()];
  }

  /** The count and digest of `idstr`'s records since its last take(); the block starts over. */
  take(idstr: string): { count: number; digest: Uint8Array } {
    const b = this.blocks.get(idstr);
    if (!b) return { count: 0, digest: finish(new HashState()) };
    if (this.stageBlock === b) this.flush();
    this.blocks.delete(idstr);
    return { count: b.count, digest: finish(b.state) };
  }

  /** Where the next record's page goes in the staging buffer, after its be64 offset. */
  private slot(idstr: string, offset: number, pageSize: number): Uint8Array {
    let b = this.blocks.get(idstr);
    if (!b) {
      b = { state: new HashState(), count: 0 };
      this.blocks.set(idstr, b);
    }
    b.count++;
    const need = 8 + pageSize;
    if (this.stageBlock !== b || this.stageAt + need > this.stage.length) {
      this.flush();
      this.stageBlock = b;
      if (this.stage.length < need) {
        this.stage = new Uint8Array(Math.max(STAGE_BYTES, need));
        this.view = new DataView(this.stage.buffer);
      }
    }
    const at = this.stageAt;
    this.view.setUint32(at, Math.floor(offset / 0x100000000));
    this.view.setUint32(at + 4, offset >>> 0);
    this.stageAt = at + need;
    return this.stage.subarray(at + 8, at + need);
  }

  private flush(): void {
    if (this.stageBlock && this.stageAt > 0) acquire(this.stageBlock.state).update(this.stage.subarray(0, this.stageAt));
    this.stageAt = 0;
    this.stageBlock = undefined;
  }
}

function hasher(): IHasher {
  if (!xxh64Instance) throw new Error('the XXH64 hasher is still loading: await digestsReady() before decoding a stream with digests synchronously');
  return xxh64Instance;
}

/** "0x…" for messages. */
function hex(bytes: Uint8Array): string {
  return `0x${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/**
 * A RamStore that checks a stream's iteration digests while RAM is applied:
 * wrap the store RAM goes to and route the decoder's events through
 * handle(). It starts checking when a manifest declares "iteration-digests"
 * (or when constructed with an algorithm) and throws DIGEST_MISMATCH at the
 * first digest record that disagrees with the pages applied, or at a RAM EOS
 * when a block's records have no digest record. Without the extension it is
 * the inner store, nothing more.
 *
 * Digests are over send order: feed it the events in stream order (the
 * pooled decoder switches to stream order when the manifest declares them).
 */
export class VerifyingRamStore implements RamStore {
  private digests: IterationDigests | undefined;
  /** Digest records checked so far. */
  checked = 0;
  /** Page records those digest records covered. */
  pagesChecked = 0;
  /** The RAMBlocks and the stream's page size, for discards. */
  private readonly blockInfo = new Map<string, RamBlockInfo>();
  private pageSize = 4096;
  private readonly written = new WrittenPages();

  constructor(
    readonly inner: RamStore,
    options: { algorithm?: DigestAlgorithm } = {},
  ) {
    if (options.algorithm) this.digests = new IterationDigests(options.algorithm);
  }

  /** Whether digests are being checked. */
  get active(): boolean {
    return this.digests !== undefined;
  }

  get algorithm(): DigestAlgorithm | undefined {
    return this.digests?.algorithm;
  }

  /**
   * Routes one decoder event: the manifest (enables checking), MEM_SIZE,
   * pages, digest records and RAM EOS. Other events are ignored.
   */
  handle(ev: StreamEvent): void {
    switch (ev.type) {
      case 'manifest': {
        const e = declaredEntry(ev.manifest, iterationDigests);
        const alg = e?.params.algorithm;
        if (typeof alg === 'string' && isDigestAlgorithm(alg) && !this.digests) this.digests = new IterationDigests(alg);
        return;
      }
      case 'ram-blocks':
        this.setBlocks(ev.blocks, ev.offset);
        return;
      case 'page':
        this.apply(ev);
        return;
      case 'configuration':
        if (ev.configuration.targetPageBits !== undefined) this.pageSize = 1 << ev.configuration.targetPageBits;
        return;
      case 'command':
        this.discard(ev);
        return;
      case 'ram-digest':
        this.check(ev);
        return;
      case 'iteration-end':
        this.iterationEnd(ev.index, ev.offset);
        return;
      case 'header':
      case 'section':
      case 'section-footer':
      case 'ram-flush':
      case 'block-chunk':
      case 'block-progress':
      case 'block-eos':
      case 'dirty-bitmap':
      case 'device-state':
      case 'warning':
      case 'end':
        return; // not RAM
      default:
        unreachable(ev);
    }
  }

  setBlocks(blocks: RamBlockInfo[], offset?: number): void {
    this.inner.setBlocks(blocks, offset);
    for (const b of blocks) {
      this.blockInfo.set(b.idstr, b);
      this.written.setBlock(b.idstr, Math.ceil(b.length / 1024)); // room for any target page size (1 KiB and up)
    }
  }

  /**
   * Applies what a command makes the destination discard (POSTCOPY_ADVISE,
   * POSTCOPY_RAM_DISCARD: src/stream/discard.ts) as zero pages, outside the
   * digests (a discard is no page record). Returns the pages it zeroed, by page index: those written
   * since their last discard (every other page is zero already).
   */
  discard(ev: Extract<StreamEvent, { type: 'command' }>): { block: RamBlockInfo; pages: number[] }[] {
    const out: { block: RamBlockInfo; pages: number[] }[] = [];
    for (const r of discardRanges(ev, this.blockInfo, this.pageSize)) {
      const pages = this.written.take(r.block.idstr, r.start / this.pageSize, (r.start + r.length) / this.pageSize);
      applyDiscard(this.inner, r.block, pages, this.pageSize);
      if (pages.length > 0) out.push({ block: r.block, pages });
    }
    return out;
  }

  apply(ev: PageEvent): void {
    this.pageSize = ev.pageSize;
    this.inner.apply(ev);
    this.written.add(ev.block.idstr, ev.offset / ev.pageSize);
    const d = this.digests;
    if (!d) return;
    if (ev.kind === 'zero') d.addFill(ev.block.idstr, ev.offset, ev.fill, ev.pageSize);
    else if (ev.kind !== 'xbzrle' && ev.data.length === ev.pageSize) d.add(ev.block.idstr, ev.offset, ev.data);
    else d.add(ev.block.idstr, ev.offset, this.inner.page(ev.block.idstr, ev.offset, ev.pageSize)); // a delta or a short inflated page: read back
  }

  /** Checks one digest record against the pages applied for its block since its last one. */
  check(ev: RamDigestEvent): void {
    const d = this.digests;
    if (!d) return;
    const idstr = ev.block.idstr;
    const fail = (what: string): never => {
      throw new MigstreamError('DIGEST_MISMATCH', ev.offset, `iteration ${ev.iteration}: digest mismatch for RAMBlock "${idstr}": ${what}`, {
        section: 'ram',
        ramBlock: idstr,
      });
    };
    if (ev.algorithm !== d.algorithm) fail(`the record is ${ev.algorithm}, the check ${d.algorithm}`);
    const { count, digest } = d.take(idstr);
    if (count !== ev.count) fail(`${count} page records arrived, the digest record counts ${ev.count}`);
    if (!equalBytes(digest, ev.digest)) fail(`the pages hash to ${hex(digest)}, the digest record says ${hex(ev.digest)}`);
    this.checked++;
    this.pagesChecked += count;
  }

  /** At a RAM EOS every block's page records must have been covered by a digest record. */
  iterationEnd(index: number, offset: number): void {
    const d = this.digests;
    if (!d) return;
    const left = d.pending();
    if (left.length === 0) return;
    const idstr = left[0]!;
    throw new MigstreamError(
      'DIGEST_MISMATCH',
      offset,
      `iteration ${index}: ${d.count(idstr)} page records of RAMBlock "${idstr}" have no digest record before the RAM EOS`,
      { section: 'ram', ramBlock: idstr },
    );
  }

  page(idstr: string, offset: number, pageSize: number): Uint8Array {
    return this.inner.page(idstr, offset, pageSize);
  }

  pageTarget(idstr: string, offset: number, pageSize: number): Uint8Array | undefined {
    return this.inner.pageTarget?.(idstr, offset, pageSize);
  }

  read(idstr: string, start: number, out: Uint8Array): void {
    this.inner.read(idstr, start, out);
  }

  close(): void {
    this.inner.close();
  }
}
