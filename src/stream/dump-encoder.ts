import { MigstreamError } from '../codec/errors.js';
import { createPageCache, type CachePolicy } from '../xbzrle/page-cache.js';
import { StreamDecoder } from './decoder.js';
import { StreamEncoder, type StreamWriter } from './encoder.js';
import { checkChunkCompression } from './chunk-size.js';
import { chunkExtensions, encoderCompressors, extensionsFor, resolveSpecs, type CompressionSpec } from './page-codecs.js';
import type { RamBlockInfo, SectionInfo, StreamEvent } from './events.js';
import { RamImage } from './ram-image.js';
import { RamSender, type XbzrleIterationStats } from './ram-sender.js';
import { BlockSender, type BlockIterationStats } from './block-sender.js';
import { encodeManifest } from './manifest.js';
import { iterationDigestsEntry } from './extensions/iteration-digests.js';
import { VerifyingRamStore, type DigestAlgorithm } from './digest.js';
import type { DiskSource } from './disk-source.js';
import { unreachable } from './clone-event.js';

/** One RAMBlock's content at each iteration (all blocks have the same number of dumps). */
export interface DumpSeries {
  idstr: string;
  /** dumps[i]: the block's bytes at iteration i. All the same length. */
  dumps: Uint8Array[];
}

/** What a template stream lends: its framing, RAMBlocks and device state. */
export interface StreamTemplate {
  header: true;
  configuration?: Uint8Array;
  ramSection: SectionInfo;
  /** The block-migration section, when the template has one. */
  blockSection?: SectionInfo;
  ramBlocks: RamBlockInfo[];
  ignoreShared: boolean;
  /** Final content of every RAMBlock in the template. */
  ram: RamImage;
  /** Device state after the RAM sections (FULL sections, EOF, vmdesc), verbatim. */
  tail: Uint8Array;
}

export interface DumpEncodeOptions {
  pageSize?: number;
  xbzrle?: { cacheBytes: number; policy?: CachePolicy };
  template?: StreamTemplate;
  /** Disks to block-migrate alongside RAM: bulk pass first, then their writes per iteration. */
  disks?: DiskSource[];
  /** Send all-zero disk chunks as ZERO_BLOCK (QEMU's zero-blocks capability). */
  zeroBlocks?: boolean;
  /** Variable-size block chunks of this size (extension "block-chunks"); undefined: QEMU's 1 MiB. */
  blockChunkSize?: number;
  /** Compress pages: zlib (QEMU's COMPRESS_PAGE) or lz4 (migstream's extension, declared in a manifest). */
  compress?: CompressionSpec;
  /** Compress non-zero variable-size disk chunks (extension "chunk-compression"); needs `blockChunkSize`. */
  chunkCompress?: CompressionSpec;
  /** Per-iteration digests with this algorithm (extension "iteration-digests"). */
  digest?: DigestAlgorithm;
}

export interface DumpEncodeResult {
  iterations: { pagesSent: number; records: XbzrleIterationStats['records'] }[];
  xbzrle: XbzrleIterationStats[];
  blocks: BlockIterationStats[];
}

// Without a template, section ids follow QEMU's pc machine: block registers before ram.
const RAM_SECTION: SectionInfo = { sectionId: 2, idstr: 'ram', instanceId: 0, versionId: 4 };
const BLOCK_SECTION: SectionInfo = { sectionId: 1, idstr: 'block', instanceId: 0, versionId: 1 };

/** The writer encodeSteps() writes through: StreamEncoder, or the pooled writer. */
export type DumpWriter = StreamWriter & { readonly bytesWritten: number };

/**
 * Where encodeSteps() pauses: "pages" every few hundred records (a pooled
 * driver waits there for room), "settle" before and after each block
 * iteration (a pooled driver drains everything there, so block byte counts
 * are exact).
 */
export type EncodeStep = 'pages' | 'settle';

/**
 * Turns a series of RAM dumps into a multi-iteration stream: iteration 0 sends
 * every page, each later one the pages that differ from the previous dump
 * (the last iteration goes in the RAM END section). With a template, blocks
 * not in the series come from the template's RAM, and the template's
 * configuration and device state frame the result so QEMU can load it.
 */
export function encodeDumps(series: DumpSeries[], out: (chunk: Uint8Array) => void, options: DumpEncodeOptions = {}): DumpEncodeResult {
  const enc = new StreamEncoder(out, { pageSize: options.pageSize ?? 4096, ...encoderCompressors(resolveSpecs(options)) });
  const steps = encodeSteps(series, enc, options);
  for (;;) {
    const r = steps.next();
    if (r.done) {
      enc.flush();
      return r.value;
    }
  }
}

/**
 * encodeDumps as a generator over any writer (the writer already set up for
 * the options' compression): what the synchronous and the pooled
 * (src/stream/pool/drivers.ts encodeDumpsPooled) encoders share. Leaves the
 * writer unflushed.
 */
export function* encodeSteps(series: DumpSeries[], enc: DumpWriter, options: DumpEncodeOptions = {}): Generator<EncodeStep, DumpEncodeResult, void> {
  const pageSize = options.pageSize ?? 4096;
  const count = series[0]?.dumps.length ?? 0;
  if (count === 0) throw new RangeError('encodeDumps needs at least one dump');
  for (const s of series) {
    if (s.dumps.length !== count) throw new RangeError(`RAMBlock ${s.idstr}: ${s.dumps.length} dumps, expected ${count}`);
    for (const d of s.dumps) {
      if (d.length !== s.dumps[0]!.length || d.length % pageSize !== 0) {
        throw new RangeError(`RAMBlock ${s.idstr}: dumps must share one length, a multiple of ${pageSize}`);
      }
    }
  }
  const t = options.template;
  const blocks: RamBlockInfo[] = t ? t.ramBlocks : series.map((s) => ({ idstr: s.idstr, length: s.dumps[0]!.length }));
  for (const s of series) {
    const b = blocks.find((x) => x.idstr === s.idstr);
    if (!b) throw new RangeError(`RAMBlock ${s.idstr} is not in the template's MEM_SIZE`);
    if (b.length !== s.dumps[0]!.length) throw new RangeError(`RAMBlock ${s.idstr}: dump of ${s.dumps[0]!.length} bytes, template block of ${b.length}`);
  }
  const { spec, chunkSpec } = resolveSpecs(options);
  checkChunkCompression(options.blockChunkSize, chunkSpec !== undefined);
  const x = options.xbzrle;
  const sender = new RamSender(enc, {
    cache: x ? createPageCache(x.policy ?? 'lru', x.cacheBytes, pageSize) : undefined,
    compress: spec?.codec,
    digest: options.digest,
  });
  const extensions = extensionsFor(spec, pageSize);
  const section = t?.ramSection ?? RAM_SECTION;
  const iterations: DumpEncodeResult['iterations'] = [];
  const disks = options.disks ?? [];
  for (const d of disks) {
    if (d.iterations < count - 1) throw new RangeError(`disk ${d.device}: ${d.iterations} iterations of writes, need ${count - 1}`);
  }
  const blockSection = disks.length ? (t?.blockSection ?? BLOCK_SECTION) : undefined;
  const blockSender = blockSection
    ? new BlockSender(enc, disks, { zeroBlocks: options.zeroBlocks, chunkSize: options.blockChunkSize, compress: chunkSpec !== undefined })
    : undefined;

  enc.header();
  if (t?.configuration) enc.raw(t.configuration);
  if (options.blockChunkSize !== undefined && disks.length) {
    extensions.push(...chunkExtensions(options.blockChunkSize, chunkSpec));
  }
  if (options.digest) extensions.push(iterationDigestsEntry(options.digest));
  if (extensions.length > 0) enc.manifest(encodeManifest(extensions));
  if (blockSection) {
    enc.sectionStart(blockSection);
    enc.blockEos();
    enc.footer(blockSection.sectionId);
  }
  enc.sectionStart(section);
  enc.memSize(blocks, t?.ignoreShared ?? false);
  enc.ramEos();
  enc.footer(section.sectionId);
  sender.setBlocks(blocks);

  // what: the bulk pass, the disks' next writes, or (a single-dump stream's END) only what is still dirty
  const blockPass = function* (what: 'bulk' | 'writes' | 'dirty', last: boolean): Generator<EncodeStep, void, void> {
    if (!blockSection || !blockSender) return;
    // Block's section precedes RAM's in every pass, as QEMU registers it first.
    if (last) enc.sectionEnd(blockSection.sectionId);
    else enc.sectionPart(blockSection.sectionId);
    yield 'settle';
    if (what === 'bulk') yield* blockSender.bulkSteps();
    else {
      if (what === 'writes') disks.forEach((d, k) => blockSender.markDirty(k, d.advance()));
      yield* blockSender.sendDirtySteps(last);
    }
    yield 'settle';
    blockSender.settle();
    enc.blockEos();
    enc.footer(blockSection.sectionId);
  };

  for (let i = 0; i < count; i++) {
    const last = i === count - 1 && count > 1;
    yield* blockPass(i === 0 ? 'bulk' : 'writes', last);
    if (last) enc.sectionEnd(section.sectionId);
    else enc.sectionPart(section.sectionId);
    let pagesSent = 0;
    if (i === 0) {
      for (const b of blocks) {
        const data = series.find((s) => s.idstr === b.idstr)?.dumps[0] ?? t?.ram.blocks.get(b.idstr);
        if (!data) continue;
        for (let off = 0; off < b.length; off += pageSize) {
          sender.send(b.idstr, off, data.subarray(off, off + pageSize), false, false);
          if ((++pagesSent & 255) === 0) yield 'pages';
        }
      }
    } else {
      for (const s of series) {
        const prev = s.dumps[i - 1]!;
        const cur = s.dumps[i]!;
        for (let off = 0; off < cur.length; off += pageSize) {
          if (pageEqual(prev, cur, off, pageSize)) continue;
          sender.send(s.idstr, off, cur.subarray(off, off + pageSize), true, last);
          if ((++pagesSent & 255) === 0) yield 'pages';
        }
      }
    }
    const stats = sender.endIteration();
    enc.ramEos();
    enc.footer(section.sectionId);
    iterations.push({ pagesSent, records: stats.records });
  }
  if (count === 1) {
    yield* blockPass('dirty', true);
    enc.sectionEnd(section.sectionId);
    enc.ramEos();
    enc.footer(section.sectionId);
  }
  if (t) enc.raw(t.tail);
  else enc.raw(Uint8Array.of(0)); // EOF: a stream without device state
  return { iterations, xbzrle: sender.history, blocks: blockSender?.history ?? [] };
}

function pageEqual(a: Uint8Array, b: Uint8Array, off: number, size: number): boolean {
  if (((a.byteOffset + off) & 3) === 0 && ((b.byteOffset + off) & 3) === 0) {
    const wa = new Int32Array(a.buffer, a.byteOffset + off, size >>> 2);
    const wb = new Int32Array(b.buffer, b.byteOffset + off, size >>> 2);
    for (let i = 0; i < wa.length; i++) if (wa[i] !== wb[i]) return false;
    return true;
  }
  for (let i = off; i < off + size; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Reads a template stream: keeps its configuration, RAM (and block) section
 * headers, MEM_SIZE, final RAM and device-state tail. Its disk chunks are not
 * carried over: disks come from the encoder's disk sources.
 */
export function readTemplate(bytes: Uint8Array): StreamTemplate {
  const ram = new RamImage();
  const checked = new VerifyingRamStore(ram); // a template with iteration digests has them checked
  let configuration: Uint8Array | undefined;
  let ramSection: SectionInfo | undefined;
  let blockSection: SectionInfo | undefined;
  let ramBlocks: RamBlockInfo[] | undefined;
  let ignoreShared = false;
  let tailStart = -1;
  const d = new StreamDecoder((ev: StreamEvent) => {
    switch (ev.type) {
      case 'configuration':
        configuration = ev.configuration.raw;
        ignoreShared = ev.configuration.capabilities.includes('x-ignore-shared');
        break;
      case 'section':
        if (ev.section.idstr === 'ram') ramSection = ev.section;
        if (ev.section.idstr === 'block') blockSection = ev.section;
        break;
      case 'ram-blocks':
        ramBlocks = ev.blocks;
        checked.handle(ev);
        break;
      case 'manifest':
      case 'page':
      case 'ram-digest':
      case 'iteration-end':
        checked.handle(ev);
        break;
      case 'device-state':
        if (tailStart < 0) tailStart = d.offset - ev.bytes.length;
        break;
      case 'header':
      case 'section-footer':
      case 'command':
      case 'ram-flush':
      case 'block-chunk':
      case 'block-progress':
      case 'block-eos':
      case 'dirty-bitmap':
      case 'warning':
      case 'end':
        break; // the template keeps the configuration, the RAM layout and the device state
      default:
        unreachable(ev);
    }
  });
  d.push(bytes);
  d.end();
  if (!ramSection || !ramBlocks || tailStart < 0) {
    throw new MigstreamError('UNSUPPORTED', 0, 'the template stream needs a RAM section and device state');
  }
  return { header: true, configuration, ramSection, blockSection, ramBlocks, ignoreShared, ram, tail: bytes.slice(tailStart) };
}
