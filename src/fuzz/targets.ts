/**
 * What one fuzz case runs, and the oracles that turn its outcome into a
 * finding: only MigstreamError may escape (and never one wrapping an internal
 * error), its offset lies inside the input, a failed decoder keeps throwing
 * the same error, chunk boundaries do not change the result, transcoding a
 * stream that decodes gives a stream that decodes to the same RAM, the file
 * sinks of `extract` write what the in-memory image holds, and the page
 * decoders agree with a reference and never write outside the page.
 */
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, rmSync, fstatSync } from 'node:fs';
import { MigstreamError } from '../codec/errors.js';
import { StreamDecoder } from '../stream/decoder.js';
import type { PageEvent, RamBlockInfo, StreamEvent } from '../stream/events.js';
import { AutoRamStore, FileDiskSink, FileRamSink, ramBlockFileName } from '../stream/files.js';
import { inflatePageNode } from '../stream/inflate.js';
import { applyPage } from '../stream/ram-image.js';
import { StatsCollector } from '../stream/stats.js';
import { transcodeBytes, type TranscodeOptions } from '../stream/transcode.js';
import { xbzrleDecode } from '../xbzrle/decode.js';
import { Rng } from './rng.js';
import { concatBytes } from '../codec/concat.js';
import { lz4DecompressInto } from '../codec/lz4-block.js';
import { fflateZlib } from '../codec/zlib-page.js';
import { lz4WasmDecompress } from '../stream/lz4-wasm.js';
import { nodeZlib } from '../stream/zlib-node.js';
import { type MultifdCase, runMultifdCase } from './multifd-target.js';

export type FindingKind =
  | 'escape' // something other than MigstreamError was thrown
  | 'internal' // a MigstreamError wrapping an internal error (a bug reported as UNSUPPORTED)
  | 'bad-offset' // error offset outside the input
  | 'message' // an error message that lost its reason ("undefined", "[object Object]")
  | 'sticky' // a failed decoder did not keep throwing the same error
  | 'chunking' // chunk boundaries changed the result
  | 'transcode' // transcode failed on a good stream, or its output decodes to other RAM
  | 'extract' // the file sinks wrote other bytes than the in-memory image
  | 'page-decoder' // XBZRLE / zlib / LZ4 decoder disagrees with its reference or wrote out of bounds
  | 'reference' // a fresh decoder no longer decodes a reference stream exactly
  | 'harness' // the fuzzer itself failed: a case that could not be built, a differential target without its decoders
  | 'slow'
  | 'hang'
  | 'memory';

export interface Finding {
  kind: FindingKind;
  target: string;
  message: string;
  stack?: string;
}

export interface StreamOptions {
  /** Also decode in random chunks drawn from this seed and compare. */
  chunkSeed?: number;
  transcode?: boolean;
  /** Transcode with XBZRLE re-encoding. */
  xbzrle?: boolean;
  /** Transcode with compressed pages (zlib: QEMU's COMPRESS_PAGE, lz4: migstream's extension). */
  compress?: 'zlib' | 'lz4';
  /** Transcode with block chunks of this size (block-chunks extension). */
  blockChunk?: number;
  /** With blockChunk: compress the chunks (chunk-compression extension). */
  chunkCompress?: 'zlib' | 'lz4';
  /** Transcode with the RAM in sparse temporary files (AutoRamStore past 64 KiB), as the CLI does for large guests. */
  fileRam?: boolean;
  /** Transcode writing per-iteration digests (extension iteration-digests). */
  digest?: boolean;
  /** Also run the extract file sinks (needs a scratch directory). */
  extract?: boolean;
}

export type FuzzCase =
  | { kind: 'stream'; bytes: Uint8Array; opts: StreamOptions }
  | { kind: 'xbzrle'; bytes: Uint8Array; pageSize: number; align: number; fill: number }
  | { kind: 'zlib'; bytes: Uint8Array; pageSize: number }
  | { kind: 'lz4'; bytes: Uint8Array; pageSize: number }
  | MultifdCase;

/** The page decoders compared against each other (and against inflatePageNode for zlib). */
export interface ExtraCodecs {
  zlib: { name: string; inflate(src: Uint8Array, pageSize: number): Uint8Array }[];
  lz4: { name: string; decode(src: Uint8Array, pageSize: number): Uint8Array }[];
}

export const NO_EXTRAS: ExtraCodecs = { zlib: [], lz4: [] };

/** Names of every page decoder a fuzz run must have: the smoke test asserts they all loaded. */
export const EXPECTED_CODECS = { zlib: ['fflate', 'node:zlib'], lz4: ['lz4-block', 'lz4-wasm'] } as const;

/**
 * The zlib and LZ4 page decoders of this tree. They are imported statically: a codec that fails
 * to load fails the run, instead of silently leaving a differential target without a partner.
 */
export async function loadExtraCodecs(): Promise<ExtraCodecs> {
  return {
    zlib: [fflateZlib, nodeZlib].map((z) => ({ name: z.name, inflate: z.inflate.bind(z) })),
    lz4: [
      {
        name: 'lz4-block',
        decode: (src, pageSize) => {
          const out = new Uint8Array(pageSize);
          lz4DecompressInto(src, out);
          return out;
        },
      },
      { name: 'lz4-wasm', decode: lz4WasmDecompress },
    ],
  };
}

// ---------------------------------------------------------------------------------------------
// Stream cases

const CANARY = 0xa5;
const GUARD = 16;

/** Guest RAM kept sparse (only pages that arrived), each page inside guard bytes. */
class SparseRam {
  readonly pages = new Map<string, Uint8Array>();
  private lengths = new Map<string, number>();

  setBlocks(blocks: RamBlockInfo[]): void {
    // Like RamImage: a block keeps its content unless it comes back with another length.
    for (const b of blocks) {
      const old = this.lengths.get(b.idstr);
      if (old !== undefined && old !== b.length) {
        for (const key of [...this.pages.keys()]) if (key.slice(0, key.lastIndexOf('@')) === b.idstr) this.pages.delete(key);
      }
      this.lengths.set(b.idstr, b.length);
    }
  }

  apply(ev: PageEvent): void {
    const key = `${ev.block.idstr}@${ev.offset}`;
    let slab = this.pages.get(key);
    if (!slab) {
      slab = new Uint8Array(ev.pageSize + 2 * GUARD);
      slab.fill(CANARY, 0, GUARD);
      slab.fill(CANARY, GUARD + ev.pageSize);
      this.pages.set(key, slab);
    }
    applyPage(ev, slab.subarray(GUARD, GUARD + ev.pageSize));
  }

  /** A page written outside its bounds, if any. */
  guardBroken(): string | undefined {
    for (const [key, slab] of this.pages) {
      for (let i = 0; i < GUARD; i++) {
        if (slab[i] !== CANARY || slab[slab.length - 1 - i] !== CANARY) return key;
      }
    }
    return undefined;
  }

  page(key: string): Uint8Array {
    const slab = this.pages.get(key)!;
    return slab.subarray(GUARD, slab.length - GUARD);
  }
}

interface StreamOutcome {
  error?: unknown;
  /** Events without their payloads, one line each. */
  trace: string[];
  ram: SparseRam;
  blocks: RamBlockInfo[];
  deviceState: Uint8Array[];
  deviceStateBytes: number;
}

function describe(ev: StreamEvent): string | undefined {
  switch (ev.type) {
    case 'page':
      return `page ${ev.kind} ${ev.block.idstr} ${ev.offset} ${ev.fill} ${ev.data.length} ${ev.dataOffset} ${ev.wireBytes}`;
    case 'device-state':
      return undefined; // arrives in as many pieces as there were chunks
    case 'end': // not the vmdesc itself: a hostile one nests too deep for JSON.stringify
      return `end ${JSON.stringify(ev.tail.devices)} ${ev.tail.vmdescBytes} ${ev.tail.parsed} ${typeof ev.tail.vmdesc}`;
    case 'configuration':
      return `configuration ${ev.configuration.machine} ${ev.configuration.capabilities.join(',')} ${ev.configuration.targetPageBits} ${ev.configuration.raw.length}`;
    case 'ram-blocks':
      return `ram-blocks ${JSON.stringify(ev.blocks)} ${ev.wireBytes}`;
    case 'block-chunk':
      return `block-chunk ${ev.device} ${ev.sector} ${ev.length} ${ev.zero} ${ev.data.length} ${ev.wireBytes}`;
    case 'command':
      return `command ${ev.command} ${ev.name} ${ev.payload.length}`;
    case 'section':
      return `section ${ev.kind} ${JSON.stringify(ev.section)} ${ev.offset}`;
    case 'section-footer':
      return `footer ${ev.section.sectionId} ${ev.present}`;
    default:
      return JSON.stringify(ev);
  }
}

/**
 * Chunk sizes for `len` bytes: tiny (1–3 byte) pieces over a window of at
 * most 2 KiB (every boundary inside every record there) and mixed, page-ish
 * or random pieces elsewhere, so a case stays at a few hundred pushes.
 */
export function chunkPlan(seed: number, len: number): number[] {
  const r = new Rng(seed, 7);
  const style = r.int(4);
  const tinyFrom = r.int(len + 1);
  const tinyTo = tinyFrom + (style === 0 ? 2048 : 256);
  const sizes: number[] = [];
  for (let at = 0; at < len; ) {
    const tiny = at >= tinyFrom && at < tinyTo;
    const n = Math.min(len - at, tiny ? 1 + r.int(3) : style === 1 ? 1 + r.skewed(14) : style === 2 ? 4096 + r.int(16) - 8 : 1 + r.int(Math.max(1, len >>> 2)));
    sizes.push(n);
    at += n;
  }
  return sizes;
}

/** Feeds `bytes` to `decoder` in pieces of the given sizes (all at once without them), then ends it. */
export function pushPieces(decoder: StreamDecoder, bytes: Uint8Array, sizes?: number[]): void {
  if (!sizes) decoder.push(bytes);
  else {
    let at = 0;
    for (const n of sizes) {
      decoder.push(bytes.subarray(at, at + n));
      at += n;
    }
  }
  decoder.end();
}

function decodeStream(bytes: Uint8Array, chunks: number[] | undefined, findings: Finding[], target: string, trace = true): StreamOutcome {
  const out: StreamOutcome = { trace: [], ram: new SparseRam(), blocks: [], deviceState: [], deviceStateBytes: 0 };
  const stats = new StatsCollector();
  const d = new StreamDecoder((ev) => {
    stats.handle(ev);
    if (trace) {
      const line = describe(ev);
      if (line !== undefined) out.trace.push(line);
    }
    if (ev.type === 'ram-blocks') {
      out.blocks = ev.blocks;
      out.ram.setBlocks(ev.blocks);
    } else if (ev.type === 'page') out.ram.apply(ev);
    else if (ev.type === 'device-state') {
      out.deviceState.push(ev.bytes.slice());
      out.deviceStateBytes += ev.bytes.length;
    }
  });
  try {
    pushPieces(d, bytes, chunks);
  } catch (e) {
    out.error = e;
    checkError(e, bytes.length, findings, target);
    if (e instanceof MigstreamError) {
      // A failed decoder stays failed, with the same error.
      for (const again of [() => d.push(Uint8Array.of(0)), () => d.end()]) {
        let e2: unknown;
        try {
          again();
        } catch (x) {
          e2 = x;
        }
        if (e2 !== e)
          findings.push({
            kind: 'sticky',
            target,
            message: `after ${e.code}, the decoder ${e2 === undefined ? 'accepted more input' : `threw ${String(e2)}`}`,
          });
      }
    }
  }
  const broken = out.ram.guardBroken();
  if (broken) findings.push({ kind: 'page-decoder', target, message: `page ${broken} written out of bounds` });
  return out;
}

function checkError(e: unknown, inputLength: number, findings: Finding[], target: string): void {
  if (!(e instanceof MigstreamError)) {
    findings.push({ kind: 'escape', target, message: `${(e as Error)?.name ?? typeof e}: ${(e as Error)?.message ?? String(e)}`, stack: (e as Error)?.stack });
    return;
  }
  const cause = (e as { cause?: unknown }).cause;
  if (cause !== undefined || e.detail.startsWith('internal error')) {
    findings.push({ kind: 'internal', target, message: e.message, stack: (cause as Error)?.stack ?? e.stack });
    return;
  }
  if (/: undefined$|\[object Object\]/.test(e.detail)) {
    findings.push({ kind: 'message', target, message: `${e.code}: ${e.detail}` });
  }
  if (!(e.offset >= 0 && e.offset <= inputLength && Number.isInteger(e.offset))) {
    findings.push({ kind: 'bad-offset', target, message: `${e.code} at offset ${e.offset} of a ${inputLength}-byte input: ${e.message}` });
  }
}

function errorKey(e: unknown): string {
  if (e === undefined) return 'ok';
  if (e instanceof MigstreamError) return `${e.code}@${e.offset}`;
  return `throw ${String(e)}`;
}

function sameRam(a: SparseRam, b: SparseRam): string | undefined {
  if (a.pages.size !== b.pages.size) return `${a.pages.size} vs ${b.pages.size} pages`;
  for (const key of a.pages.keys()) {
    if (!b.pages.has(key)) return `page ${key} missing`;
    if (Buffer.compare(a.page(key), b.page(key)) !== 0) return `page ${key} differs`;
  }
  return undefined;
}

let scratchDir: string | undefined;
let scratchSeq = 0;

/** A scratch directory for the extract sinks (tmpfs when there is one). */
export function setScratchDir(dir: string | undefined): void {
  scratchDir = dir;
  if (dir) mkdirSync(dir, { recursive: true });
}

/** Whether the decoder ran the stream to the end (for corpus statistics). */
export interface CaseResult {
  findings: Finding[];
  /** 'ok' or the error code. */
  outcome: string;
}

export function runStreamCase(bytes: Uint8Array, opts: StreamOptions): CaseResult {
  const findings: Finding[] = [];
  const a = decodeStream(bytes, undefined, findings, 'decoder', opts.chunkSeed !== undefined);
  const okA = a.error === undefined;

  if (opts.chunkSeed !== undefined) {
    const b = decodeStream(bytes, chunkPlan(opts.chunkSeed, bytes.length), findings, 'decoder-chunked');
    const ka = errorKey(a.error);
    const kb = errorKey(b.error);
    let diff: string | undefined;
    if (ka !== kb) diff = `one buffer: ${ka}, chunks: ${kb}`;
    else if (a.trace.length !== b.trace.length) diff = `${a.trace.length} vs ${b.trace.length} events`;
    else {
      const i = a.trace.findIndex((line, k) => line !== b.trace[k]);
      if (i >= 0) diff = `event ${i}: ${a.trace[i]!.slice(0, 200)} vs ${b.trace[i]!.slice(0, 200)}`;
    }
    diff ??= sameRam(a.ram, b.ram);
    if (!diff && a.deviceStateBytes !== b.deviceStateBytes) diff = `device state ${a.deviceStateBytes} vs ${b.deviceStateBytes} bytes`;
    if (!diff && Buffer.compare(concatBytes(a.deviceState), concatBytes(b.deviceState)) !== 0) diff = 'device state bytes differ';
    if (diff) findings.push({ kind: 'chunking', target: 'decoder-chunked', message: diff });
  }

  if (opts.transcode) {
    const target = `transcode${opts.xbzrle ? '-xbzrle' : ''}${opts.compress ? `-${opts.compress}` : ''}${opts.blockChunk ? `-chunks${opts.chunkCompress ? `-${opts.chunkCompress}` : ''}` : ''}${opts.fileRam ? '-file-ram' : ''}${opts.digest ? '-digest' : ''}`;
    let out: Uint8Array | undefined;
    const ramStore = opts.fileRam ? new AutoRamStore(64 << 10) : undefined;
    try {
      out = transcodeBytes(bytes, {
        ...(ramStore ? { ramStore } : {}),
        maxRamBytes: 16 << 20,
        ...(opts.xbzrle ? { xbzrle: { cacheBytes: 64 << 10 } } : {}),
        ...(opts.compress ? { compress: { codec: opts.compress } } : {}),
        ...(opts.blockChunk ? { blockChunk: opts.blockChunk } : {}),
        ...(opts.blockChunk && opts.chunkCompress ? { chunkCompress: { codec: opts.chunkCompress } } : {}),
        ...(opts.digest ? { digest: 'xxh64' } : {}),
      } as TranscodeOptions);
    } catch (e) {
      const before = findings.length;
      checkError(e, bytes.length, findings, target);
      // LIMIT (its RAM cap), UNSUPPORTED (e.g. another page size) and DIGEST_MISMATCH (the decoder alone
      // keeps no RAM, so only appliers check iteration digests) are the transcoder's own refusals.
      const own = ['LIMIT', 'UNSUPPORTED', 'DIGEST_MISMATCH'];
      if (okA && findings.length === before && e instanceof MigstreamError && !own.includes(e.code)) {
        findings.push({ kind: 'transcode', target, message: `the input decodes, but transcoding it failed: ${e.message}` });
      }
    } finally {
      ramStore?.close();
    }
    if (out) {
      if (!okA) findings.push({ kind: 'transcode', target, message: `transcode accepted a stream the decoder rejects (${errorKey(a.error)})` });
      else {
        const c = decodeStream(out, undefined, findings, `${target}-output`, false);
        if (c.error !== undefined) findings.push({ kind: 'transcode', target, message: `the transcoded stream does not decode: ${String(c.error)}` });
        else {
          const diff = sameRam(a.ram, c.ram);
          if (diff) findings.push({ kind: 'transcode', target, message: `the transcoded stream decodes to other RAM: ${diff}` });
        }
      }
    }
  }

  if (opts.extract && scratchDir) runExtract(bytes, a, findings);
  return { findings, outcome: a.error instanceof MigstreamError ? a.error.code : a.error === undefined ? 'ok' : 'escape' };
}

function runExtract(bytes: Uint8Array, a: StreamOutcome, findings: Finding[]): void {
  const dir = `${scratchDir}/x${process.pid}-${scratchSeq++}`;
  mkdirSync(dir, { recursive: true });
  try {
    const ram = new FileRamSink(dir);
    const disks = new FileDiskSink(dir);
    let error: unknown;
    try {
      const d = new StreamDecoder((ev) => {
        if (ev.type === 'ram-blocks') ram.setBlocks(ev.blocks);
        else if (ev.type === 'page') ram.apply(ev);
        else if (ev.type === 'block-chunk') disks.chunk(ev);
      });
      d.push(bytes);
      d.end();
    } catch (e) {
      error = e;
      checkError(e, bytes.length, findings, 'extract');
    } finally {
      ram.close();
      disks.close();
    }
    // The sinks' own refusal: a disk offset past what the file system holds (FileDiskSink's LIMIT).
    const sinkLimit = error instanceof MigstreamError && error.code === 'LIMIT' && error.detail.includes('file system cannot hold');
    if (!sinkLimit && errorKey(error) !== errorKey(a.error)) {
      findings.push({ kind: 'extract', target: 'extract', message: `extract sinks: ${errorKey(error)}, in-memory: ${errorKey(a.error)}` });
      return;
    }
    if (error !== undefined) return;
    // Small blocks are compared whole: pages the image does not hold must read as zeros.
    for (const b of a.blocks) {
      if (b.length > 1 << 20) continue;
      const file = readFileSync(`${dir}/${ramBlockFileName(b.idstr)}`);
      const want = new Uint8Array(b.length);
      for (const [key] of a.ram.pages) {
        const at = key.lastIndexOf('@');
        if (key.slice(0, at) !== b.idstr) continue;
        const offset = Number(key.slice(at + 1));
        want.set(a.ram.page(key).subarray(0, Math.max(0, b.length - offset)), offset);
      }
      if (file.length !== b.length || Buffer.compare(file, want) !== 0) {
        findings.push({
          kind: 'extract',
          target: 'extract',
          message: `${b.idstr}: the ${file.length}-byte file differs from the ${b.length}-byte in-memory block`,
        });
        return;
      }
    }
    // Every page the in-memory image holds must read back from its block file.
    for (const key of a.ram.pages.keys()) {
      const at = key.lastIndexOf('@');
      const id = key.slice(0, at);
      const offset = Number(key.slice(at + 1));
      const want = a.ram.page(key);
      const got = new Uint8Array(want.length);
      const fd = openSync(`${dir}/${ramBlockFileName(id)}`, 'r');
      try {
        readSync(fd, got, 0, got.length, offset);
        const size = fstatSync(fd).size;
        const block = a.blocks.find((b) => b.idstr === id);
        if (block && size !== block.length) {
          findings.push({ kind: 'extract', target: 'extract', message: `${id}: file of ${size} bytes for a ${block.length}-byte RAMBlock` });
          return;
        }
      } finally {
        closeSync(fd);
      }
      if (Buffer.compare(got, want) !== 0) {
        findings.push({ kind: 'extract', target: 'extract', message: `page ${key}: the extracted file differs from the in-memory image` });
        return;
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Removes what extract cases left behind (call at exit). */
export function cleanScratch(): void {
  if (!scratchDir) return;
  for (const f of readdirSync(scratchDir)) if (f.startsWith(`x${process.pid}-`)) rmSync(`${scratchDir}/${f}`, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------
// Page decoders

/** QEMU's xbzrle_decode_buffer, transcribed byte by byte: the reference. */
export function referenceXbzrle(src: Uint8Array, dst: Uint8Array): number {
  const slen = src.length;
  const dlen = dst.length;
  let i = 0;
  let d = 0;
  const uleb = (): [number, number] => {
    const a = src[i]!;
    if (!(a & 0x80)) return [a, 1];
    const b = src[i + 1]!;
    if (b & 0x80) return [0, -1];
    return [(a & 0x7f) | (b << 7), 2];
  };
  while (i < slen) {
    if (slen - i < 2) return -1;
    let [count, ret] = uleb();
    if (ret < 0 || (i && !count)) return -1;
    i += ret;
    d += count;
    if (d > dlen) return -1;
    if (slen - i < 2) return -1;
    [count, ret] = uleb();
    if (ret < 0 || !count) return -1;
    i += ret;
    if (d + count > dlen || i + count > slen) return -1;
    for (let k = 0; k < count; k++) dst[d + k] = src[i + k]!;
    d += count;
    i += count;
  }
  return d;
}

function runXbzrleCase(c: Extract<FuzzCase, { kind: 'xbzrle' }>): Finding[] {
  const findings: Finding[] = [];
  const { bytes, pageSize, align, fill } = c;
  // The page sits at an odd offset inside a larger buffer with guard bytes around it.
  const slab = new Uint8Array(pageSize + 2 * GUARD + align).fill(CANARY);
  const page = slab.subarray(GUARD + align, GUARD + align + pageSize);
  for (let i = 0; i < pageSize; i++) page[i] = (i * fill) >>> 3;
  const ref = page.slice();
  const want = referenceXbzrle(bytes, ref);
  // The source too sits at an offset inside a larger buffer.
  const srcSlab = new Uint8Array(bytes.length + 3);
  srcSlab.set(bytes, align % 3);
  const src = srcSlab.subarray(align % 3, (align % 3) + bytes.length);
  let got: number;
  try {
    got = xbzrleDecode(src, page, 1000);
  } catch (e) {
    if (!(e instanceof MigstreamError)) {
      findings.push({ kind: 'escape', target: 'xbzrle', message: String(e), stack: (e as Error)?.stack });
      return findings;
    }
    got = -1;
  }
  for (let i = 0; i < GUARD + align; i++) {
    if (slab[i] !== CANARY) findings.push({ kind: 'page-decoder', target: 'xbzrle', message: `wrote ${GUARD + align - i} bytes before the page` });
  }
  for (let i = GUARD + align + pageSize; i < slab.length; i++) {
    if (slab[i] !== CANARY)
      findings.push({ kind: 'page-decoder', target: 'xbzrle', message: `wrote byte ${i - GUARD - align} past the ${pageSize}-byte page` });
  }
  if (got !== want) findings.push({ kind: 'page-decoder', target: 'xbzrle', message: `returned ${got}, QEMU's decoder ${want}` });
  else if (want >= 0 && Buffer.compare(page, ref) !== 0)
    findings.push({ kind: 'page-decoder', target: 'xbzrle', message: 'decoded page differs from the reference' });
  return findings.slice(0, 1);
}

/**
 * The decoder turns whatever a page codec throws into DECOMPRESS, so the codecs must reject with a
 * plain Error: a TypeError, RangeError or wasm trap is a bug the decoder would hide as a bad page.
 */
export function plainError(e: unknown): boolean {
  return e instanceof Error && Object.getPrototypeOf(e) === Error.prototype;
}

function runCodecCase(
  target: string,
  decoders: { name: string; decode(src: Uint8Array, pageSize: number): Uint8Array }[],
  bytes: Uint8Array,
  pageSize: number,
): Finding[] {
  const results: { name: string; out?: Uint8Array; error?: unknown }[] = [];
  for (const dec of decoders) {
    try {
      const out = dec.decode(bytes, pageSize);
      results.push({ name: dec.name, out: out.slice() });
      if (out.length > pageSize) return [{ kind: 'page-decoder', target, message: `${dec.name} returned ${out.length} bytes for a ${pageSize}-byte page` }];
    } catch (e) {
      if (!plainError(e)) return [{ kind: 'escape', target, message: `${dec.name}: ${String(e)}`, stack: (e as Error)?.stack }];
      results.push({ name: dec.name, error: e });
    }
  }
  for (let i = 1; i < results.length; i++) {
    const a = results[0]!;
    const b = results[i]!;
    // fflate builds Huffman tables that zlib rejects as invalid ("invalid code lengths set", …) and
    // decodes them anyway; its inflate checks the Adler-32, so what it accepts is what was compressed.
    // Documented leniency of the portable path (docs/fuzzing.md), not a finding.
    if (
      b.name === 'fflate' &&
      a.out === undefined &&
      b.out !== undefined &&
      /invalid (code lengths|distances|literal\/lengths) set|invalid code/.test(String(a.error))
    )
      continue;
    if ((a.out === undefined) !== (b.out === undefined)) {
      return [
        {
          kind: 'page-decoder',
          target,
          message: `${a.name}: ${a.out ? `${a.out.length} bytes` : String(a.error)}; ${b.name}: ${b.out ? `${b.out.length} bytes` : String(b.error)}`,
        },
      ];
    }
    if (a.out && b.out && Buffer.compare(a.out, b.out) !== 0)
      return [{ kind: 'page-decoder', target, message: `${a.name} and ${b.name} inflate to different bytes` }];
  }
  return [];
}

/** Every target a fuzz run can exercise: the decoder, each transcode option, extract, the page decoders. */
export const ALL_TARGETS = [
  'decoder',
  'decoder-chunked',
  'transcode',
  'transcode-xbzrle',
  'transcode-zlib',
  'transcode-lz4',
  'transcode-chunks',
  'transcode-chunks-zlib',
  'transcode-chunks-lz4',
  'transcode-file-ram',
  'transcode-digest',
  'extract',
  'xbzrle',
  'zlib',
  'lz4',
  'multifd',
] as const;

/** The targets one case exercises (a transcode with several options counts for each). */
export function targetsOf(c: FuzzCase): string[] {
  if (c.kind !== 'stream') return [c.kind];
  const o = c.opts;
  const t = ['decoder'];
  if (o.chunkSeed !== undefined) t.push('decoder-chunked');
  if (o.transcode) {
    t.push('transcode');
    if (o.xbzrle) t.push('transcode-xbzrle');
    if (o.compress) t.push(`transcode-${o.compress}`);
    if (o.blockChunk) t.push(o.chunkCompress ? `transcode-chunks-${o.chunkCompress}` : 'transcode-chunks');
    if (o.fileRam) t.push('transcode-file-ram');
    if (o.digest) t.push('transcode-digest');
  }
  if (o.extract && scratchDir) t.push('extract');
  return t;
}

export function runCase(c: FuzzCase, extras: ExtraCodecs = NO_EXTRAS): CaseResult {
  switch (c.kind) {
    case 'stream':
      return runStreamCase(c.bytes, c.opts);
    case 'xbzrle':
      return { findings: runXbzrleCase(c), outcome: 'xbzrle' };
    case 'zlib': {
      const decoders = [{ name: 'inflatePageNode', decode: inflatePageNode }, ...extras.zlib.map((z) => ({ name: z.name, decode: z.inflate }))];
      return { findings: runCodecCase('zlib', decoders, c.bytes, c.pageSize), outcome: 'zlib' };
    }
    case 'lz4':
      // a differential target needs two decoders: with fewer it would pass without checking anything
      if (extras.lz4.length < 2)
        return { findings: [{ kind: 'harness', target: 'lz4', message: `${extras.lz4.length} LZ4 decoder(s) loaded, the check needs 2` }], outcome: 'lz4' };
      return { findings: runCodecCase('lz4', extras.lz4, c.bytes, c.pageSize), outcome: 'lz4' };
    case 'multifd':
      return runMultifdCase(c);
  }
}

/** What a fresh decoder makes of `bytes`: outcome, every event and every page, hashed. */
export function fingerprint(bytes: Uint8Array): string {
  const findings: Finding[] = [];
  const o = decodeStream(bytes, undefined, findings, 'reference');
  const h = createHash('sha256');
  h.update(errorKey(o.error));
  for (const line of o.trace) h.update(line).update('\n');
  for (const key of [...o.ram.pages.keys()].sort()) h.update(key).update(o.ram.page(key));
  for (const d of o.deviceState) h.update(d);
  return `${errorKey(o.error)} ${o.trace.length} events ${o.ram.pages.size} pages ${findings.length} findings ${h.digest('hex').slice(0, 16)}`;
}
