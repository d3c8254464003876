import { concatBytes } from '../codec/concat.js';
import { createPageCache, type CachePolicy } from '../xbzrle/page-cache.js';
import { MigstreamError } from '../codec/errors.js';
import { BlockRewriter } from './block-rewriter.js';
import { checkChunkCompression, checkChunkSize } from './chunk-size.js';
import { StreamDecoder, type DecoderOptions } from './decoder.js';
import type { PageTarget } from './decoder-options.js';
import { StreamEncoder, type StreamWriter } from './encoder.js';
import type { StreamEvent } from './events.js';
import { VerifyingRamStore, type DigestAlgorithm } from './digest.js';
import { encodeManifest } from './manifest.js';
import { iterationDigestsEntry } from './extensions/iteration-digests.js';
import { blockChunks } from './extensions/block-chunks.js';
import { declaredEntry } from './extensions/extension.js';
import { chunkExtensions, encoderCompressors, extensionsFor, resolveSpecs, type CompressionSpec } from './page-codecs.js';
import { RamImage, type RamStore } from './ram-image.js';
import { RamSender, type XbzrleIterationStats } from './ram-sender.js';
import { unreachable } from './clone-event.js';

export type { StreamWriter };

export interface TranscodeOptions extends DecoderOptions {
  /** Most guest RAM held in memory while transcoding. Default 8 GiB. */
  maxRamBytes?: number;
  /** Where the guest RAM is kept (default: in memory, up to maxRamBytes); e.g. an AutoRamStore for large guests. */
  ramStore?: RamStore;
  /** Re-send pages as XBZRLE deltas against a sender-side cache of this size and policy. */
  xbzrle?: { cacheBytes: number; policy?: CachePolicy };
  /**
   * Compress pages: "zlib" writes QEMU's COMPRESS_PAGE records (QEMU mode,
   * loadable with the compress capability), "lz4" migstream's LZ4 pages
   * behind an extension manifest. Without it the output is plain QEMU mode,
   * whatever the input used.
   */
  compress?: CompressionSpec;
  /**
   * Write block chunks of this size (extension "block-chunks"): QEMU's 1 MiB
   * chunks are split, zero parts become zero chunks. Without it, chunks go
   * out in QEMU's 1 MiB form (variable-size input is reassembled).
   */
  blockChunk?: number;
  /**
   * Compress the non-zero variable-size chunks (extension "chunk-compression");
   * needs `blockChunk`. A chunk that does not shrink goes out plain.
   */
  chunkCompress?: CompressionSpec;
  /** Disk sizes by device: clips the padding QEMU sends past the end of a disk. */
  diskSizes?: Record<string, number>;
  /**
   * Write per-iteration digests (extension "iteration-digests") with this
   * algorithm. Without it the output has none, whatever the input had (the
   * input's digests are checked either way).
   */
  digest?: DigestAlgorithm;
}

/** Default XBZRLE cache: QEMU's default xbzrle-cache-size. */
export const DEFAULT_XBZRLE_CACHE = 64 << 20;

/**
 * Re-encodes a QEMU stream as plain QEMU 7.2 records: every page record is
 * applied to a RAM image (XBZRLE and compressed pages need the page's prior
 * content) and the resulting page goes out as ZERO or PAGE, in the same
 * sections. Block chunks, commands and device state pass through unchanged,
 * so real QEMU loads the result.
 */
export class Transcoder {
  /** The RAM image, wrapped to check the input's iteration digests when it declares them. */
  readonly ram: VerifyingRamStore;
  readonly sender: RamSender;
  private readonly enc: StreamWriter;
  private readonly manifest: Uint8Array | undefined;
  private manifestDue = false;
  private ignoreShared = false;
  /** Pages sent before, per RAMBlock: XBZRLE applies only to re-sent pages, as in QEMU. */
  private readonly sent = new Map<string, Uint8Array>();
  /** Pages sent in a last stage, per RAMBlock: QEMU leaves their cached copy as it was, so it is stale. */
  private readonly stale = new Map<string, Uint8Array>();
  /** False after a second MEM_SIZE: it may resize blocks and moves the cache's address layout. */
  private cacheTrusted = true;
  private lastStage = false;
  /** After POSTCOPY_LISTEN: pages go out whole. */
  private postcopy = false;
  private readonly blocks: BlockRewriter;

  /**
   * @param out a byte sink (a StreamEncoder is made for it), or a ready
   *   writer, e.g. a PooledEncoder configured for `options.compress`.
   */
  constructor(out: ((chunk: Uint8Array) => void) | StreamWriter, options: TranscodeOptions = {}) {
    this.ram = new VerifyingRamStore(options.ramStore ?? new RamImage(options.maxRamBytes));
    const specs = resolveSpecs(options);
    const { spec, chunkSpec } = specs;
    const pageSize = options.pageSize ?? 4096;
    this.enc = typeof out === 'function' ? new StreamEncoder(out, { pageSize, ...encoderCompressors(specs) }) : out;
    const extensions = extensionsFor(spec, pageSize);
    checkChunkCompression(options.blockChunk, chunkSpec !== undefined);
    if (options.blockChunk !== undefined) {
      checkChunkSize(options.blockChunk);
      extensions.push(...chunkExtensions(options.blockChunk, chunkSpec));
    }
    if (options.digest) extensions.push(iterationDigestsEntry(options.digest));
    this.blocks = new BlockRewriter(this.enc, options.blockChunk, options.diskSizes ?? {}, chunkSpec !== undefined);
    this.manifest = extensions.length > 0 ? encodeManifest(extensions) : undefined;
    const x = options.xbzrle;
    this.sender = new RamSender(this.enc, {
      cache: x ? createPageCache(x.policy ?? 'lru', x.cacheBytes, options.pageSize) : undefined,
      compress: spec?.codec,
      digest: options.digest,
    });
  }

  /** XBZRLE counters per RAM section (all zero without --xbzrle). */
  get xbzrleStats(): XbzrleIterationStats[] {
    return this.sender.history;
  }

  /** The receiver no longer holds these pages (a discard): they count as never sent. */
  private forget(idstr: string, pages: number[]): void {
    const sent = this.sent.get(idstr);
    if (!sent) return;
    for (const i of pages) sent[i >>> 3]! &= ~(1 << (i & 7));
  }

  /**
   * For the decoder feeding `handle` (DecoderOptions.pageTarget): LZ4 pages
   * are decoded straight into this transcoder's RAM image instead of into a
   * fresh page that is then copied there.
   */
  readonly pageTarget: PageTarget = (block, offset, pageSize) => this.ram.pageTarget(block.idstr, offset, pageSize);

  handle = (ev: StreamEvent): void => {
    const enc = this.enc;
    if (this.manifestDue && ev.type !== 'configuration') {
      // our manifest goes right after the configuration (or the header, for streams without one)
      this.manifestDue = false;
      enc.manifest(this.manifest!);
    }
    switch (ev.type) {
      case 'header':
        enc.header();
        this.manifestDue = this.manifest !== undefined;
        return;
      case 'configuration': {
        // The page cache, sent-page bitmaps and compressors are sized for enc.pageSize: refuse other page sizes
        // (8: the configuration record follows the header).
        const bits = ev.configuration.targetPageBits;
        if (bits !== undefined && 1 << bits !== enc.pageSize) {
          throw new MigstreamError(
            'UNSUPPORTED',
            8,
            `transcode: the stream's target page size is ${1 << bits} bytes, the transcoder's ${enc.pageSize} (pass pageSize: ${1 << bits})`,
          );
        }
        this.ignoreShared = ev.configuration.capabilities.includes('x-ignore-shared');
        enc.raw(ev.configuration.raw);
        if (this.manifestDue) {
          this.manifestDue = false;
          enc.manifest(this.manifest!);
        }
        return;
      }
      case 'manifest': // the input's extensions are decoded away; ours were declared above
        this.blocks.inputVariable = declaredEntry(ev.manifest, blockChunks) !== undefined;
        this.ram.handle(ev); // checks the input's digests, if it has them
        return;
      case 'section':
        this.lastStage = ev.kind === 'end';
        if (ev.kind === 'start') enc.sectionStart(ev.section);
        else if (ev.kind === 'part') enc.sectionPart(ev.section.sectionId);
        else enc.sectionEnd(ev.section.sectionId);
        return;
      case 'section-footer':
        if (ev.present) enc.footer(ev.section.sectionId);
        return;
      case 'command':
        // A range the destination discards is gone there: its next send is a whole page, never a delta or
        // "unchanged" (which would leave it missing on a postcopy destination); our image drops it too.
        for (const d of this.ram.discard(ev)) this.forget(d.block.idstr, d.pages);
        // From LISTEN on QEMU loads RAM with ram_load_postcopy: no XBZRLE (ram.c sends none in postcopy either).
        if (ev.name === 'POSTCOPY_LISTEN' || ev.package?.commands.some((c) => c.name === 'POSTCOPY_LISTEN')) this.postcopy = true;
        enc.command(ev.command, ev.payload);
        if (ev.package) enc.raw(ev.package.bytes); // PACKAGED's blob follows the record, outside its length
        return;
      case 'ram-blocks':
        if (this.sent.size > 0) this.cacheTrusted = false;
        this.ram.setBlocks(ev.blocks, ev.offset);
        this.sender.setBlocks(ev.blocks);
        for (const b of ev.blocks) {
          this.sent.set(b.idstr, new Uint8Array(Math.ceil(b.length / enc.pageSize / 8)));
          this.stale.set(b.idstr, new Uint8Array(Math.ceil(b.length / enc.pageSize / 8)));
        }
        enc.memSize(ev.blocks, this.ignoreShared);
        return;
      case 'page': {
        this.ram.apply(ev);
        // Only a delta or a short inflated page needs the page read back from the store.
        const page =
          ev.kind === 'normal' || ((ev.kind === 'compressed' || ev.kind === 'lz4') && ev.data.length === ev.pageSize)
            ? ev.data
            : ev.kind === 'zero' && ev.fill === 0 && ev.pageSize === this.sender.zeroPage.length
              ? this.sender.zeroPage // known zero: the sender does not scan it
              : this.ram.page(ev.block.idstr, ev.offset, ev.pageSize);
        const sent = this.sent.get(ev.block.idstr)!;
        const index = ev.offset / ev.pageSize;
        const bit = 1 << (index & 7);
        const stale = this.stale.get(ev.block.idstr)!;
        // A delta only against a cached copy the receiver still holds; otherwise the page goes out whole.
        const resend = (sent[index >>> 3]! & bit) !== 0 && this.cacheTrusted && !this.postcopy && (stale[index >>> 3]! & bit) === 0;
        sent[index >>> 3]! |= bit;
        if (this.lastStage) stale[index >>> 3]! |= bit;
        this.sender.send(ev.block.idstr, ev.offset, page, resend, this.lastStage);
        return;
      }
      case 'ram-flush': // a multifd sync point: meaningless without multifd, and 7.2 rejects it
        return;
      case 'ram-digest': // checked, not copied: with `digest` the sender writes the output's own
        this.ram.check(ev);
        return;
      case 'iteration-end':
        this.ram.iterationEnd(ev.index, ev.offset);
        this.sender.endIteration();
        enc.ramEos();
        return;
      case 'block-chunk':
        this.blocks.chunk(ev);
        return;
      case 'block-progress':
        this.blocks.flush();
        enc.blockProgress(ev.percent);
        return;
      case 'dirty-bitmap': // passed through as read: its meaning does not depend on RAM or disks
        enc.raw(ev.record.raw);
        return;
      case 'block-eos':
        this.blocks.flush();
        enc.blockEos();
        return;
      case 'device-state':
        enc.raw(ev.bytes);
        return;
      case 'warning': // a damaged vmdesc trailer: its bytes pass on as device state, as QEMU would skip them
        return;
      case 'end':
        enc.flush();
        return;
      default:
        unreachable(ev);
    }
  };
}

/** Transcodes a whole stream held in memory. */
export function transcodeBytes(input: Uint8Array, options: TranscodeOptions = {}): Uint8Array {
  const parts: Uint8Array[] = [];
  const t = new Transcoder((c) => parts.push(c), options);
  const d = new StreamDecoder(t.handle, { ...options, pageTarget: t.pageTarget });
  d.push(input);
  d.end();
  return concatChunks(parts);
}

/** Joins output chunks (kept under this name for callers of the transcoder). */
export const concatChunks = concatBytes;
