import { ByteReader } from '../codec/byte-reader.js';
import { concatBytes } from '../codec/concat.js';
import { MigstreamError, NeedMoreData, type ErrorCode } from '../codec/errors.js';
import {
  BLK_CHUNK_SIZE,
  BLK_DEVICE_BLOCK,
  BLK_EOS,
  BLK_FLAG_MASK,
  BLK_PROGRESS,
  BLK_VAR_CHUNK,
  BLK_COMPRESSED,
  CHUNK_CODEC_LZ4,
  CHUNK_CODEC_ZLIB,
  BLK_ZERO_BLOCK,
  COMMAND_LENGTHS,
  COMMAND_NAMES,
  DEFAULT_PAGE_SIZE,
  ENCODING_FLAG_XBZRLE,
  VAR_CHUNK_MAX,
  RAM_COMPRESS_PAGE,
  RAM_CONTINUE,
  RAM_EOS,
  RAM_HOOK,
  RAM_MEM_SIZE,
  RAM_MULTIFD_FLUSH,
  RAM_PAGE,
  RAM_XBZRLE,
  RAM_ZERO,
  VM_COMMAND,
  VM_CONFIGURATION,
  VM_EOF,
  VM_FILE_MAGIC,
  VM_FILE_VERSION,
  VM_FILE_VERSION_COMPAT,
  VM_SECTION_END,
  VM_SECTION_FOOTER,
  VM_SECTION_FULL,
  VM_SECTION_PART,
  VM_SECTION_START,
  VM_SUBSECTION,
  compressBound,
  MIGSTREAM_MANIFEST_COMMAND,
  RAM_LZ4_PAGE,
  RAM_DIGEST,
} from './constants.js';
import { lz4Bound } from '../codec/lz4-block.js';
import { checkChunkCompression, decodeManifest, digestParams, lz4Params, SUPPORTED_EXTENSIONS } from './manifest.js';
import { lz4WasmDecompress } from './lz4-wasm.js';
import type { BlockChunkEvent, EventHandler, PageKind, RamBlockInfo, SectionInfo, SectionKind, StreamEvent, StreamWarning } from './events.js';
import { inflatePageNode, type PageInflater } from './inflate.js';
import { parseTail } from './tail.js';
import { DBM_EOS, readDirtyBitmapRecord, type DirtyBitmapRecord } from './dirty-bitmap.js';
import { xbzrleDecode } from '../xbzrle/decode.js';

/**
 * Limits that keep hostile input from costing unbounded memory or time
 * (docs/limits.md). Exceeding one fails the stream with a MigstreamError of
 * code LIMIT at the offending byte; where QEMU has its own check for the same
 * field, exceeding QEMU's bound fails with QEMU's code and wording instead,
 * and the option can only make the check stricter.
 */
export interface DecoderLimits {
  /** Most RAMBlocks one MEM_SIZE record may declare. Default 1024. */
  maxRamBlocks: number;
  /** Most bytes of RAM one MEM_SIZE record may declare. Default 1 TiB (2^40). */
  maxTotalRam: number;
  /**
   * Most bytes of device state after the last iterable section (FULL
   * sections, EOF, vmdesc): the decoder keeps them to split them at the end.
   * Default 64 MiB.
   */
  maxTailBytes: number;
  /** Most bytes of the vmdesc JSON trailer (its be32 length). Default 16 MiB. */
  maxVmdescBytes: number;
  /** Longest machine name in the configuration record. Default 256. */
  maxMachineName: number;
  /**
   * Longest section idstr, RAMBlock idstr or block device name (str8 fields).
   * Default 255, what the length byte can say (QEMU's idstrs are char[256]).
   */
  maxIdstrLength: number;
  /**
   * Longest XBZRLE payload. Default Infinity: QEMU's own check (at most the
   * page size, "Failed to load XBZRLE page - len overflow!") always applies.
   */
  maxXbzrleLength: number;
  /**
   * Longest compressed page payload (QEMU's zlib COMPRESS_PAGE and
   * migstream's LZ4 page). Default Infinity: the codec's bound for the page
   * size always applies (zlib: compressBound, 4110 for 4 KiB pages, QEMU's
   * "Invalid compressed data length"; LZ4: LZ4_compressBound, 4128).
   */
  maxCompressedLength: number;
  /**
   * Largest block-migration chunk payload. Default 1 MiB, QEMU's fixed
   * BLK_MIG_BLOCK_SIZE and the block-chunks extension's maximum.
   */
  maxBlockChunk: number;
}

export const DEFAULT_LIMITS: DecoderLimits = {
  maxRamBlocks: 1024,
  maxTotalRam: 2 ** 40,
  maxTailBytes: 64 << 20,
  maxVmdescBytes: 16 << 20,
  maxMachineName: 256,
  maxIdstrLength: 255,
  maxXbzrleLength: Infinity,
  maxCompressedLength: Infinity,
  maxBlockChunk: 1 << 20,
};

export interface DecoderOptions {
  /** Target page size when the stream does not say (configuration/target-page-bits). Default 4096 (x86). */
  pageSize?: number;
  limits?: Partial<DecoderLimits>;
  /** Inflater for COMPRESS_PAGE records. Default: node:zlib. */
  inflatePage?: PageInflater;
  /** Decoder for migstream's LZ4 page records. Default: lz4-wasm-nodejs. */
  lz4Page?: PageInflater;
  /**
   * "inline" (default): compressed pages arrive inflated. "defer": they arrive
   * with `encoded: true` and the compressed payload as `data`, for a worker
   * pool to decompress (src/stream/pool/decompress-queue.ts).
   */
  decompress?: 'inline' | 'defer';
  /** Extensions (name → newest version) this reader accepts. Default: all migstream supports. */
  extensions?: Readonly<Record<string, number>>;
  /**
   * A damaged vmdesc trailer after EOF fails the stream (BAD_VMDESC, TRUNCATED, TRAILING_DATA, LIMIT)
   * instead of being a `warning` event. Default false: QEMU 7.2 skips the trailer and loads such a stream.
   */
  strict?: boolean;
  /** Called with each `warning` as well as the event (the CLI prints them on stderr, also under a worker pool). */
  onWarning?: (warning: StreamWarning) => void;
}

type State = 'header' | 'configuration' | 'top' | 'ram' | 'block' | 'dirty-bitmap' | 'footer' | 'tail' | 'done' | 'failed';

const EMPTY: Uint8Array = new Uint8Array(0);
const ZERO_DATA: Uint8Array = EMPTY;

/**
 * Incremental decoder for QEMU 7.2 precopy streams. Feed it chunks of any
 * size with push(), then call end(). It emits StreamEvents to the handler
 * synchronously. Each top-level unit (one record, one section header) is
 * parsed atomically: if it is not all buffered yet, the decoder rewinds to its
 * start and waits until enough bytes arrived, so chunk boundaries never change
 * the result.
 */
export class StreamDecoder {
  private readonly emit: EventHandler;
  private readonly limits: DecoderLimits;
  private readonly inflate: PageInflater;
  private readonly lz4Page: PageInflater;
  private readonly defer: boolean;
  private readonly supportedExtensions: Readonly<Record<string, number>>;
  private readonly strict: boolean;
  private readonly onWarning: ((warning: StreamWarning) => void) | undefined;
  /** Set by an extension manifest that declares lz4-pages. */
  private lz4 = false;
  /** Set by an extension manifest that declares iteration-digests: the digest length (0: not declared). */
  private digestLength = 0;
  private digestAlgorithm = '';
  /** A manifest may only come before the first section, and only once. */
  private sawSection = false;
  private manifestSeen = false;
  private pageSize: number;
  private flagMask: number;

  private state: State = 'header';
  private failure: MigstreamError | undefined;
  /** Buffered, not yet consumed bytes: buf[pos..] is at stream offset base+pos. */
  private buf: Uint8Array = EMPTY;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private base = 0;
  private pos = 0;
  /** Absolute offset that must be buffered before the next parse attempt. */
  private needed = 0;
  private needWhat = '';

  private readonly sections = new Map<number, SectionInfo>();
  private current: { section: SectionInfo; kind: SectionKind } | undefined;
  private footers: boolean | undefined;
  private blocks = new Map<string, RamBlockInfo>();
  private lastBlock: RamBlockInfo | undefined;
  private ignoreShared = false;
  private postcopyHugePages = false;
  private ramSections = 0;
  private scratch: Uint8Array = EMPTY;
  /** Dirty-bitmap section: the aliases a record without names refers to, and each bitmap's granularity from its START. */
  private bitmapNode = '';
  private bitmapName = '';
  private readonly bitmapGranularity = new Map<string, number>();

  /** Extensions of ours the stream's manifest declared; none in a QEMU stream. */
  private readonly extensions = new Set<string>();

  private tailStart = 0;
  private tailKept: Uint8Array[] = [];
  private tailBytes = 0;

  constructor(handler: EventHandler, options: DecoderOptions = {}) {
    this.emit = handler;
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.inflate = options.inflatePage ?? inflatePageNode;
    this.lz4Page = options.lz4Page ?? lz4WasmDecompress;
    this.defer = options.decompress === 'defer';
    this.supportedExtensions = options.extensions ?? SUPPORTED_EXTENSIONS;
    this.strict = options.strict === true;
    this.onWarning = options.onWarning;
    this.pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE;
    this.flagMask = this.pageSize - 1;
  }

  /** Accepts the records of these extensions (called when a manifest declares them). */
  enableExtensions(names: Iterable<string>): void {
    for (const n of names) this.extensions.add(n);
  }

  /** Stream offset of the next byte the decoder has not consumed. */
  get offset(): number {
    return this.base + this.pos;
  }

  get finished(): boolean {
    return this.state === 'done';
  }

  push(chunk: Uint8Array): void {
    if (this.failure) throw this.failure;
    if (chunk.length === 0) return;
    if (this.state === 'done') {
      this.fail(new MigstreamError('TRAILING_DATA', this.offset, 'expected the end of the stream, found more bytes'));
    }
    if (this.state === 'tail') {
      this.takeTail(chunk);
      return;
    }
    if (this.pos === this.buf.length && this.pendingBytes === 0) {
      this.base += this.buf.length;
      this.buf = chunk;
      this.pos = 0;
    } else {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
    }
    if (this.base + this.buf.length + this.pendingBytes < this.needed) return;
    this.compact();
    this.run();
  }

  /** Declares the end of input; throws TRUNCATED if the stream stopped early. */
  end(): void {
    if (this.failure) throw this.failure;
    if (this.state === 'done') return;
    if (this.state !== 'tail') {
      // Parse what push() held back for a large unit's look-ahead (see run()).
      this.compact();
      this.run();
    }
    if (this.state === 'tail') {
      const tail = concatBytes(this.tailKept);
      try {
        const info = parseTail(tail, this.tailStart, this.footers !== false, this.limits.maxVmdescBytes, this.strict);
        this.state = 'done';
        if (info.warning) {
          this.onWarning?.(info.warning);
          this.emit({ type: 'warning', warning: info.warning });
        }
        this.emit({ type: 'end', tail: info });
      } catch (e) {
        this.fail(e instanceof MigstreamError ? e : internal(e, this.tailStart));
      }
      return;
    }
    this.compact();
    const what =
      this.needed > this.offset ? this.needWhat : this.state === 'header' ? 'the stream header' : 'the next record';
    this.fail(
      new MigstreamError('TRUNCATED', this.base + this.buf.length, `unexpected end of stream: expected ${what}`, this.context()),
    );
  }

  private fail(error: MigstreamError): never {
    this.state = 'failed';
    this.failure = error;
    throw error;
  }

  private compact(): void {
    if (this.pendingBytes === 0) return;
    const rest = this.buf.length - this.pos;
    const merged = new Uint8Array(rest + this.pendingBytes);
    merged.set(this.buf.subarray(this.pos), 0);
    let at = rest;
    for (const p of this.pending) {
      merged.set(p, at);
      at += p.length;
    }
    this.base += this.pos;
    this.buf = merged;
    this.pos = 0;
    this.pending = [];
    this.pendingBytes = 0;
  }

  private run(): void {
    const r = new ByteReader(this.buf, this.base, this.pos);
    try {
      for (;;) {
        this.pos = r.pos;
        switch (this.state) {
          case 'header':
            this.readHeader(r);
            break;
          case 'configuration':
            this.readConfiguration(r);
            break;
          case 'top':
            this.readTopLevel(r);
            break;
          case 'ram':
            this.readRamRecord(r);
            break;
          case 'dirty-bitmap': {
            const at = r.offset;
            const rec = readDirtyBitmapRecord(r);
            // a record without names refers to the last ones named, as in QEMU's loader
            this.bitmapNode = rec.node ?? this.bitmapNode;
            this.bitmapName = rec.bitmap ?? this.bitmapName;
            this.checkBitmapRecord(rec, at);
            this.emit({ type: 'dirty-bitmap', record: rec, node: this.bitmapNode, bitmap: this.bitmapName });
            if (rec.flags & DBM_EOS) this.state = 'footer';
            break;
          }
          case 'block':
            this.readBlockRecord(r);
            break;
          case 'footer':
            this.readFooter(r);
            break;
          case 'tail': {
            const rest = this.buf.subarray(r.pos);
            this.pos = this.buf.length;
            this.tailStart = this.base + r.pos;
            if (rest.length > 0) this.takeTail(rest);
            return;
          }
          default:
            return;
        }
      }
    } catch (e) {
      if (e instanceof NeedMoreData) {
        // A unit already past 16 KiB and still incomplete (only MEM_SIZE, with up to 1024 long names, gets
        // there field by field) waits for twice its size before the next attempt: re-parsing it every few
        // bytes cost O(n²) when a sender dribbles it in small pieces. end() parses what this holds back.
        const partial = this.buf.length - this.pos;
        this.needed = partial > 16384 ? Math.max(e.needed, this.base + this.pos + 2 * partial) : e.needed;
        this.needWhat = e.what;
        return;
      }
      if (e instanceof MigstreamError) this.fail(e.withContext(this.context()));
      this.fail(internal(e, this.offset));
    }
  }

  private context(): { section?: string } {
    return this.current ? { section: this.current.section.idstr } : {};
  }

  private takeTail(chunk: Uint8Array): void {
    if (this.tailBytes + chunk.length > this.limits.maxTailBytes) {
      this.fail(
        new MigstreamError('LIMIT', this.tailStart + this.limits.maxTailBytes, `device state after the last iterable section exceeds the limit of ${this.limits.maxTailBytes} bytes`),
      );
    }
    this.tailKept.push(chunk.slice());
    this.tailBytes += chunk.length;
    this.emit({ type: 'device-state', bytes: chunk });
  }

  // Header: be32 magic, be32 version.
  private readHeader(r: ByteReader): void {
    const magic = r.be32('the stream magic');
    const version = r.be32('the stream version');
    if (magic !== VM_FILE_MAGIC) {
      throw new MigstreamError('BAD_MAGIC', 0, `expected magic 0x5145564d ("QEVM"), found 0x${hex(magic, 8)}`);
    }
    if (version === VM_FILE_VERSION_COMPAT) {
      throw new MigstreamError('BAD_VERSION', 4, 'SaveVM v2 format is obsolete and don\'t work anymore');
    }
    if (version !== VM_FILE_VERSION) {
      throw new MigstreamError('BAD_VERSION', 4, `Unsupported migration stream version: expected 3, found ${version}`);
    }
    this.emit({ type: 'header', version });
    this.state = 'configuration';
  }

  // Configuration: 0x07, be32 len + machine name, then subsections (0x05 str8 name be32 version payload).
  private readConfiguration(r: ByteReader): void {
    const start = r.pos;
    if (r.peekU8('a section type') !== VM_CONFIGURATION) {
      this.state = 'top'; // machine types <= 2.3 send no configuration
      return;
    }
    r.u8();
    const lenAt = r.offset;
    const len = r.be32('the machine name length');
    if (len > this.limits.maxMachineName) {
      throw new MigstreamError('LIMIT', lenAt, `machine name of ${len} bytes exceeds the limit of ${this.limits.maxMachineName}`);
    }
    const machine = new TextDecoder().decode(r.bytes(len, 'the machine name'));
    const capabilities: string[] = [];
    let targetPageBits: number | undefined;
    let uuid: Uint8Array | undefined;
    while (r.peekU8('a section type') === VM_SUBSECTION) {
      r.u8();
      const nameAt = r.offset;
      const name = r.str8('a subsection name', 'BAD_CONFIGURATION');
      const version = r.be32('a subsection version');
      if (version !== 1) {
        throw new MigstreamError('BAD_CONFIGURATION', nameAt, `subsection ${name}: expected version 1, found ${version}`);
      }
      if (name === 'configuration/target-page-bits') {
        targetPageBits = r.be32('target page bits');
      } else if (name === 'configuration/capabilities') {
        const count = r.be32('the capability count');
        if (count > 64) throw new MigstreamError('LIMIT', nameAt, `${count} capabilities in the configuration`);
        for (let i = 0; i < count; i++) capabilities.push(r.str8('a capability name', 'BAD_CONFIGURATION'));
      } else if (name === 'configuration/uuid') {
        uuid = r.bytes(16, 'the uuid').slice();
      } else {
        throw new MigstreamError('BAD_CONFIGURATION', nameAt, `unknown subsection "${name}" in the configuration`);
      }
    }
    if (targetPageBits !== undefined) {
      if (targetPageBits < 10 || targetPageBits > 16) {
        throw new MigstreamError('BAD_CONFIGURATION', r.offset, `target page bits ${targetPageBits} out of range 10..16`);
      }
      this.pageSize = 1 << targetPageBits;
      this.flagMask = this.pageSize - 1;
    }
    this.ignoreShared = capabilities.includes('x-ignore-shared');
    const raw = this.buf.slice(start, r.pos);
    this.emit({ type: 'configuration', configuration: { machine, capabilities, targetPageBits, uuid, raw } });
    this.state = 'top';
  }

  private readTopLevel(r: ByteReader): void {
    const at = r.offset;
    const type = r.peekU8('a section type');
    switch (type) {
      case VM_SECTION_START:
      case VM_SECTION_FULL: {
        if (type === VM_SECTION_FULL) {
          this.state = 'tail'; // device state: kept verbatim, split at the end
          this.current = undefined;
          return;
        }
        r.u8();
        const sectionId = r.be32('a section id');
        const idstr = this.name(r, 'a section idstr', 'BAD_SECTION');
        const instanceId = r.be32('an instance id');
        const versionId = r.be32('a version id');
        if (idstr.length === 0) throw new MigstreamError('BAD_SECTION', at + 5, 'expected a section idstr, found an empty one');
        // QEMU 7.2 registers ram, block and dirty-bitmap once, as instance 0: any other instance is not found
        if (instanceId !== 0 && (idstr === 'ram' || idstr === 'block' || idstr === 'dirty-bitmap')) {
          throw new MigstreamError('BAD_SECTION', at, `Unknown savevm section or instance '${idstr}' ${instanceId}`);
        }
        const section = { sectionId, idstr, instanceId, versionId };
        this.openSection(section, 'start', at);
        this.sections.set(sectionId, section);
        return;
      }
      case VM_SECTION_PART:
      case VM_SECTION_END: {
        r.u8();
        const sectionId = r.be32('a section id');
        const section = this.sections.get(sectionId);
        if (!section) throw new MigstreamError('BAD_SECTION', at + 1, `Unknown savevm section ${sectionId}`);
        this.openSection(section, type === VM_SECTION_PART ? 'part' : 'end', at);
        return;
      }
      case VM_COMMAND:
        this.readCommand(r);
        return;
      case VM_EOF:
        this.state = 'tail';
        return;
      default:
        throw new MigstreamError('BAD_SECTION', at, `Unknown savevm section type ${type}`);
    }
  }

  private openSection(section: SectionInfo, kind: SectionKind, at: number): void {
    this.sawSection = true;
    if (section.idstr === 'ram') {
      if (section.versionId !== 4) {
        throw new MigstreamError('BAD_SECTION', at, `ram section: expected version 4, found ${section.versionId}`);
      }
      this.state = 'ram';
    } else if (section.idstr === 'block') {
      if (section.versionId !== 1) {
        throw new MigstreamError('BAD_SECTION', at, `block section: expected version 1, found ${section.versionId}`);
      }
      this.state = 'block';
    } else if (section.idstr === 'dirty-bitmap') {
      if (section.versionId !== 1) {
        throw new MigstreamError('BAD_SECTION', at, `dirty-bitmap section: expected version 1, found ${section.versionId}`);
      }
      this.state = 'dirty-bitmap';
    } else {
      throw new MigstreamError('UNSUPPORTED', at, `iterable section "${section.idstr}" is not supported`);
    }
    this.current = { section, kind };
    this.emit({ type: 'section', kind, section, offset: at });
  }

  // Footer: 0x7e be32 section_id after every START/PART/END/FULL (absent for machine types <= 2.3).
  private readFooter(r: ByteReader): void {
    const section = this.current!.section;
    const at = r.offset;
    const marker = r.peekU8('a section footer');
    if (this.footers === undefined) this.footers = marker === VM_SECTION_FOOTER;
    if (this.footers) {
      if (marker !== VM_SECTION_FOOTER) {
        throw new MigstreamError('BAD_SECTION', at, `Missing section footer for ${section.idstr}: expected 0x7e, found 0x${hex(marker, 2)}`);
      }
      r.u8();
      const id = r.be32('the footer section id');
      if (id !== section.sectionId) {
        throw new MigstreamError(
          'BAD_SECTION',
          at + 1,
          `Mismatched section id in footer for ${section.idstr} -- read 0x${id.toString(16)} expected 0x${section.sectionId.toString(16)}`,
        );
      }
    }
    this.emit({ type: 'section-footer', section, present: this.footers });
    this.current = undefined;
    this.state = 'top';
  }

  // Command: 0x08 be16 cmd be16 len payload.
  private readCommand(r: ByteReader): void {
    const at = r.offset;
    r.u8();
    const command = r.be16('a command number');
    const len = r.be16('a command length');
    const payload = r.bytes(len, 'the command payload');
    if (command === MIGSTREAM_MANIFEST_COMMAND) {
      this.readManifest(payload, at);
      return;
    }
    if (command === 0 || command >= COMMAND_NAMES.length) {
      throw new MigstreamError('BAD_COMMAND', at + 1, `Invalid command ${command}`);
    }
    const name = COMMAND_NAMES[command]!;
    const fixed = COMMAND_LENGTHS[command]!;
    if (fixed >= 0 && len !== fixed) {
      throw new MigstreamError('BAD_COMMAND', at + 3, `${name} received bad length ${len}: expected ${fixed}`);
    }
    if (name === 'PACKAGED' || name === 'POSTCOPY_LISTEN' || name === 'POSTCOPY_RUN' || name === 'ENABLE_COLO') {
      throw new MigstreamError('UNSUPPORTED', at, `command ${name}: postcopy and COLO streams are not supported`);
    }
    if (name === 'POSTCOPY_ADVISE' && len === 16) {
      const summary = new ByteReader(payload).be64();
      if (summary !== this.pageSize) this.postcopyHugePages = true;
    }
    this.emit({ type: 'command', command, name, payload });
  }

  // migstream's extension manifest: msgpack, before any section, at most once.
  private readManifest(payload: Uint8Array, at: number): void {
    if (this.sawSection) throw new MigstreamError('BAD_MANIFEST', at, 'the extension manifest must come before the first section');
    if (this.manifestSeen) throw new MigstreamError('BAD_MANIFEST', at, 'a second extension manifest');
    this.manifestSeen = true;
    const manifest = decodeManifest(payload, at, this.supportedExtensions);
    checkChunkCompression(manifest, at);
    this.enableExtensions(manifest.extensions.map((e) => e.name));
    const digests = this.supportedExtensions['iteration-digests'] !== undefined ? digestParams(manifest, at, this.pageSize) : undefined;
    if (digests) {
      this.digestLength = digests.length;
      this.digestAlgorithm = digests.algorithm;
    }
    if (lz4Params(manifest, at, this.pageSize)) {
      if (this.pageSize <= RAM_LZ4_PAGE) {
        throw new MigstreamError('BAD_MANIFEST', at, `lz4-pages needs pages above ${RAM_LZ4_PAGE} bytes for its record flag, the stream has ${this.pageSize}`);
      }
      this.lz4 = true;
    }
    this.emit({ type: 'manifest', manifest, payload });
  }

  // One RAM record: be64 offset|flags, then what the flags say.
  private readRamRecord(r: ByteReader): void {
    const at = r.offset;
    const start = r.pos;
    const hi = r.be32('a RAM record header');
    const lo = r.be32('a RAM record header');
    const flags = lo & this.flagMask;
    // Offset bits at or above 2^53 (no RAMBlock is that large; a JS number cannot hold them exactly): QEMU
    // ignores them in EOS and flush records and rejects a page there as an illegal offset, after its block.
    const huge = hi > 0x1fffff;
    const addr = hi * 0x100000000 + (lo - flags);
    const type = flags & ~RAM_CONTINUE;
    let kind: PageKind;
    let block: RamBlockInfo;
    let fill = 0;
    let data: Uint8Array = ZERO_DATA;
    let dataOffset = 0;
    let compressedBytes: number | undefined;
    switch (type) {
      case RAM_ZERO:
        block = this.blockRef(r, flags, at);
        fill = r.u8('the fill byte of a ZERO page');
        kind = 'zero';
        break;
      case RAM_PAGE:
        block = this.blockRef(r, flags, at);
        dataOffset = r.offset;
        data = r.bytes(this.pageSize, 'the data of a PAGE record');
        kind = 'normal';
        break;
      case RAM_XBZRLE: {
        block = this.blockRef(r, flags, at);
        const encAt = r.offset;
        const encoding = r.u8('the XBZRLE encoding flag');
        const elen = r.be16('the XBZRLE length');
        if (encoding !== ENCODING_FLAG_XBZRLE) {
          throw new MigstreamError('XBZRLE_DECODE', encAt, `Failed to load XBZRLE page - wrong compression! expected 0x01, found 0x${hex(encoding, 2)}`, { ramBlock: block.idstr });
        }
        if (elen > this.pageSize) {
          throw new MigstreamError('XBZRLE_DECODE', encAt + 1, `Failed to load XBZRLE page - len overflow! ${elen} > ${this.pageSize}`, { ramBlock: block.idstr });
        }
        if (elen > this.limits.maxXbzrleLength) {
          throw new MigstreamError('LIMIT', encAt + 1, `XBZRLE payload of ${elen} bytes exceeds the limit of ${this.limits.maxXbzrleLength}`, { ramBlock: block.idstr });
        }
        dataOffset = r.offset;
        data = r.bytes(elen, 'the XBZRLE data');
        // Validate the grammar here so every consumer (even inspect) rejects what QEMU rejects.
        if (this.scratch.length !== this.pageSize) this.scratch = new Uint8Array(this.pageSize);
        try {
          xbzrleDecode(data, this.scratch, dataOffset);
        } catch (e) {
          throw e instanceof MigstreamError ? e.withContext({ ramBlock: block.idstr }) : e;
        }
        kind = 'xbzrle';
        break;
      }
      case RAM_COMPRESS_PAGE: {
        block = this.blockRef(r, flags, at);
        const lenAt = r.offset;
        const clen = r.be32('a compressed page length');
        if (clen > compressBound(this.pageSize)) {
          throw new MigstreamError('DECOMPRESS', lenAt, `Invalid compressed data length: ${clen} (at most ${compressBound(this.pageSize)})`, { ramBlock: block.idstr });
        }
        if (clen > this.limits.maxCompressedLength) {
          throw new MigstreamError('LIMIT', lenAt, `compressed page of ${clen} bytes exceeds the limit of ${this.limits.maxCompressedLength}`, { ramBlock: block.idstr });
        }
        dataOffset = r.offset;
        const compressed = r.bytes(clen, 'compressed page data');
        compressedBytes = clen;
        if (this.defer) data = compressed;
        else {
          try {
            data = this.inflate(compressed, this.pageSize);
          } catch (e) {
            throw new MigstreamError('DECOMPRESS', dataOffset, `decompress data failed: ${e instanceof Error ? e.message : String(e)}`, { ramBlock: block.idstr });
          }
        }
        kind = 'compressed';
        break;
      }
      // migstream's LZ4 page (declared by the manifest): be32 length, one LZ4 block holding exactly a page.
      case this.lz4 ? RAM_LZ4_PAGE : -1: {
        block = this.blockRef(r, flags, at);
        const lenAt = r.offset;
        const clen = r.be32('an LZ4 page length');
        if (clen === 0 || clen > lz4Bound(this.pageSize)) {
          throw new MigstreamError('DECOMPRESS', lenAt, `Invalid LZ4 page length: ${clen} (1..${lz4Bound(this.pageSize)})`, { ramBlock: block.idstr });
        }
        if (clen > this.limits.maxCompressedLength) {
          throw new MigstreamError('LIMIT', lenAt, `LZ4 page of ${clen} bytes exceeds the limit of ${this.limits.maxCompressedLength}`, { ramBlock: block.idstr });
        }
        dataOffset = r.offset;
        const compressed = r.bytes(clen, 'LZ4 page data');
        compressedBytes = clen;
        if (this.defer) data = compressed;
        else {
          try {
            data = this.lz4Page(compressed, this.pageSize);
          } catch (e) {
            throw new MigstreamError('DECOMPRESS', dataOffset, `LZ4 page failed to decompress: ${e instanceof Error ? e.message : String(e)}`, { ramBlock: block.idstr });
          }
        }
        kind = 'lz4';
        break;
      }
      // migstream's digest record (declared by the manifest): block reference, be64 count, u8 length, digest.
      case this.digestLength > 0 ? RAM_DIGEST : -1: {
        if (addr !== 0) throw new MigstreamError('BAD_RAM_RECORD', at, `digest record with address bits 0x${addr.toString(16)}: expected 0`);
        const digestBlock = this.blockRef(r, flags, at);
        const count = r.be64('a digest record count');
        const lenAt = r.offset;
        const len = r.u8('a digest length');
        if (len !== this.digestLength) {
          throw new MigstreamError('BAD_RAM_RECORD', lenAt, `digest of ${len} bytes: ${this.digestAlgorithm} digests have ${this.digestLength}`, { ramBlock: digestBlock.idstr });
        }
        const digest = r.bytes(len, 'the digest').slice();
        this.lastBlock = digestBlock;
        this.emit({ type: 'ram-digest', block: digestBlock, iteration: this.ramSections, count, algorithm: this.digestAlgorithm, digest, offset: at, wireBytes: r.pos - start });
        return;
      }
      case RAM_MEM_SIZE:
        this.readMemSize(r, huge ? Infinity : addr, at, start);
        return;
      case RAM_EOS:
        this.emit({ type: 'iteration-end', index: this.ramSections++, kind: this.current!.kind, offset: at });
        this.state = 'footer';
        return;
      case RAM_MULTIFD_FLUSH:
        this.emit({ type: 'ram-flush' });
        return;
      case RAM_HOOK:
        throw new MigstreamError('UNSUPPORTED', at, 'RAM_SAVE_FLAG_HOOK: RDMA streams are not supported');
      default:
        if (flags & (RAM_ZERO | RAM_PAGE | RAM_XBZRLE | RAM_COMPRESS_PAGE)) {
          // QEMU reads the block and checks the offset for any flags with a page bit, then judges the combination
          block = this.blockRef(r, flags, at);
          this.checkOffset(block, addr, huge, hi, lo - flags, at);
        }
        throw new MigstreamError('BAD_RAM_RECORD', at, `Unknown combination of migration flags: 0x${flags.toString(16)}`);
    }
    this.checkOffset(block, addr, huge, hi, lo - flags, at);
    this.lastBlock = block;
    const ev: StreamEvent = { type: 'page', kind, block, offset: addr, pageSize: this.pageSize, fill, data, dataOffset, wireBytes: r.pos - start };
    if (compressedBytes !== undefined) {
      ev.compressedBytes = compressedBytes;
      if (this.defer) ev.encoded = true;
    }
    this.emit(ev);
  }

  private checkOffset(block: RamBlockInfo, addr: number, huge: boolean, hi: number, loAddr: number, at: number): void {
    if (huge || addr + this.pageSize > block.length) {
      const shown = huge ? `${hi.toString(16)}${hex(loAddr, 8)}` : addr.toString(16);
      throw new MigstreamError('BAD_OFFSET', at, `Illegal RAM offset 0x${shown}: block is 0x${block.length.toString(16)} bytes`, { ramBlock: block.idstr });
    }
  }

  // A str8 name (section idstr, RAMBlock idstr, block device) within maxIdstrLength.
  private name(r: ByteReader, what: string, code: ErrorCode): string {
    const len = r.peekU8(what);
    if (len > this.limits.maxIdstrLength) {
      throw new MigstreamError('LIMIT', r.offset, `${what} of ${len} bytes exceeds the limit of ${this.limits.maxIdstrLength}`);
    }
    return r.str8(what, code);
  }

  // Block reference: the idstr unless CONTINUE says "same block as the previous page".
  private blockRef(r: ByteReader, flags: number, at: number): RamBlockInfo {
    if (flags & RAM_CONTINUE) {
      if (!this.lastBlock) throw new MigstreamError('BAD_RAM_RECORD', at, 'Ack, bad migration stream! (CONTINUE with no previous RAMBlock)');
      return this.lastBlock;
    }
    const idAt = r.offset;
    const idstr = this.name(r, 'a RAMBlock idstr', 'UNKNOWN_RAMBLOCK');
    const block = this.blocks.get(idstr);
    if (!block) throw new MigstreamError('UNKNOWN_RAMBLOCK', idAt, `Can't find block ${idstr}`);
    return block;
  }

  // MEM_SIZE: total | 0x04, then str8 idstr + be64 used_length [+ page size] [+ mr_addr] until the lengths add up.
  private readMemSize(r: ByteReader, total: number, at: number, start: number): void {
    if (total > this.limits.maxTotalRam || total === Infinity) {
      throw new MigstreamError('LIMIT', at, `MEM_SIZE declares ${total === Infinity ? '2^53 or more' : total} bytes of RAM, above the limit of ${this.limits.maxTotalRam}`);
    }
    if (this.postcopyHugePages) {
      throw new MigstreamError('UNSUPPORTED', at, 'MEM_SIZE with postcopy hugepage-backed RAMBlocks is not supported');
    }
    const blocks: RamBlockInfo[] = [];
    const seen = new Set<string>();
    let left = total;
    while (left > 0) {
      const idAt = r.offset;
      const idstr = this.name(r, 'a RAMBlock idstr in MEM_SIZE', 'BAD_RAM_RECORD');
      const length = r.be64('a RAMBlock length');
      const block: RamBlockInfo = { idstr, length };
      if (this.ignoreShared) block.mrAddr = r.be64('a RAMBlock address (x-ignore-shared)');
      if (idstr.length === 0) throw new MigstreamError('BAD_RAM_RECORD', idAt, 'expected a RAMBlock idstr in MEM_SIZE, found an empty one');
      if (seen.has(idstr)) throw new MigstreamError('BAD_RAM_RECORD', idAt, `RAMBlock "${idstr}" listed twice in MEM_SIZE`);
      if (length > left) {
        throw new MigstreamError('BAD_RAM_RECORD', idAt, `RAMBlock "${idstr}" length ${length} exceeds the ${left} bytes MEM_SIZE has left`);
      }
      if (blocks.length >= this.limits.maxRamBlocks) {
        throw new MigstreamError('LIMIT', idAt, `more than ${this.limits.maxRamBlocks} RAMBlocks in MEM_SIZE`);
      }
      if (length === 0) throw new MigstreamError('BAD_RAM_RECORD', idAt, `RAMBlock "${idstr}" has length 0`);
      seen.add(idstr);
      blocks.push(block);
      left -= length;
    }
    this.blocks = new Map(blocks.map((b) => [b.idstr, b]));
    this.lastBlock = undefined;
    this.emit({ type: 'ram-blocks', blocks, wireBytes: r.pos - start, offset: at });
  }

  // One block-migration record: be64 sector<<9|flags, then device name and 1 MiB unless ZERO_BLOCK.
  private readBlockRecord(r: ByteReader): void {
    const at = r.offset;
    const start = r.pos;
    const hi = r.be32('a block record header');
    const lo = r.be32('a block record header');
    const flags = lo & BLK_FLAG_MASK;
    const sector = hi * 0x800000 + (lo >>> 9);
    // As for RAM records: a JS number holds the sector exactly only below 2^53; QEMU ignores those bits
    // in EOS and prints a PROGRESS percent as (int)(header >> 9).
    const huge = hi > 0x1fffff;
    if (flags & BLK_DEVICE_BLOCK) {
      if (huge) throw new MigstreamError('BAD_BLOCK_RECORD', at, `block record header 0x${hex(hi, 8)}${hex(lo, 8)} beyond 2^53`);
      const device = this.name(r, 'a block device name', 'BAD_BLOCK_RECORD');
      const zero = (flags & BLK_ZERO_BLOCK) !== 0;
      let length = BLK_CHUNK_SIZE;
      if (flags & BLK_VAR_CHUNK) {
        if (!this.extensions.has('block-chunks')) {
          throw new MigstreamError('BAD_BLOCK_RECORD', at, `Unknown block migration flags: 0x${flags.toString(16)} (a variable-size chunk, but no manifest declared the "block-chunks" extension)`);
        }
        const lenAt = r.offset;
        length = r.be32('a block chunk length');
        if (length === 0 || length > VAR_CHUNK_MAX || length % 512 !== 0) {
          throw new MigstreamError('BAD_BLOCK_RECORD', lenAt, `expected a chunk length of 512..${VAR_CHUNK_MAX} bytes in whole sectors, found ${length}`, { device });
        }
        if (!zero && length > this.limits.maxBlockChunk) {
          throw new MigstreamError('LIMIT', lenAt, `block chunk of ${length} bytes exceeds the limit of ${this.limits.maxBlockChunk}`, { device });
        }
      } else if (!zero && length > this.limits.maxBlockChunk) {
        throw new MigstreamError('LIMIT', at, `QEMU's ${length}-byte block chunk exceeds the limit of ${this.limits.maxBlockChunk}`, { device });
      }
      if (device.length === 0) throw new MigstreamError('BAD_BLOCK_RECORD', at + 8, 'Error unknown block device: empty name');
      if (sector * 512 + length > Number.MAX_SAFE_INTEGER) {
        // No disk is that large, and byte offsets past 2^53 cannot even be represented.
        throw new MigstreamError('BAD_BLOCK_RECORD', at, `block chunk at sector ${sector} ends beyond 2^53 bytes`, { device });
      }
      if (flags & BLK_COMPRESSED) {
        this.readCompressedChunk(r, at, flags, device, sector, length, start);
      } else {
        const dataOffset = r.offset;
        const data = zero ? EMPTY : r.bytes(length, length === BLK_CHUNK_SIZE ? 'a 1 MiB block chunk' : 'block chunk data');
        this.emit({ type: 'block-chunk', device, sector, length, zero, data, dataOffset, wireBytes: r.pos - start });
      }
    } else if (flags & BLK_PROGRESS) {
      // past 2^53, the low 32 bits of header >> 9: what QEMU's (int) cast prints, and a header transcode can write back
      this.emit({ type: 'block-progress', percent: huge ? ((((hi & 0x1ff) << 23) | (lo >>> 9)) >>> 0) : sector });
    } else if (!(flags & BLK_EOS)) {
      throw new MigstreamError('BAD_BLOCK_RECORD', at, `Unknown block migration flags: 0x${flags.toString(16)}`);
    }
    if (flags & BLK_EOS) {
      this.emit({ type: 'block-eos' });
      this.state = 'footer';
    }
  }

  // QEMU's dirty_bitmap_load_bits: the bits buffer must hold exactly the bitmap's serialisation of
  // the range, padded to 32 bytes as send_bitmap_bits pads it (checked once START gave the granularity).
  private checkBitmapRecord(rec: DirtyBitmapRecord, at: number): void {
    const key = `${this.bitmapNode}\u0000${this.bitmapName}`;
    if (rec.kind === 'start') this.bitmapGranularity.set(key, rec.granularity!);
    const granularity = this.bitmapGranularity.get(key);
    if (rec.kind !== 'bits' || rec.data === undefined || !granularity) return;
    const needed = Math.ceil(Math.ceil((rec.sectors! * 512) / granularity) / 64) * 8;
    if (rec.data.length < needed || rec.data.length > Math.ceil(needed / 32) * 32) {
      throw new MigstreamError(
        'BAD_SECTION',
        at + rec.raw.length - rec.data.length - 8,
        `Migrated bitmap granularity doesn't match the destination bitmap '${this.bitmapName}' granularity: ${rec.sectors} sectors at granularity ${granularity} need ${needed} bytes of bits (up to ${Math.ceil(needed / 32) * 32} padded), the record carries ${rec.data.length}`,
        { section: 'dirty-bitmap' },
      );
    }
  }

  // A compressed variable-size chunk: after the length, a codec byte and be32 clen (1 <= clen < length).
  private readCompressedChunk(r: ByteReader, at: number, flags: number, device: string, sector: number, length: number, start: number): void {
    if (!this.extensions.has('chunk-compression')) {
      throw new MigstreamError('BAD_BLOCK_RECORD', at, `Unknown block migration flags: 0x${flags.toString(16)} (a compressed chunk, but no manifest declared the "chunk-compression" extension)`, { device });
    }
    if (!(flags & BLK_VAR_CHUNK) || flags & BLK_ZERO_BLOCK) {
      throw new MigstreamError('BAD_BLOCK_RECORD', at, `Unknown block migration flags: 0x${flags.toString(16)} (a compressed chunk must be a variable-size, non-zero chunk)`, { device });
    }
    const codecAt = r.offset;
    const id = r.u8('a chunk codec byte');
    const codec = id === CHUNK_CODEC_ZLIB ? 'zlib' : id === CHUNK_CODEC_LZ4 ? 'lz4' : undefined;
    if (!codec) {
      throw new MigstreamError('BAD_BLOCK_RECORD', codecAt, `expected a chunk codec (${CHUNK_CODEC_ZLIB} zlib, ${CHUNK_CODEC_LZ4} LZ4), found ${id}`, { device });
    }
    const clenAt = r.offset;
    const clen = r.be32('a compressed chunk length');
    if (clen === 0 || clen >= length) {
      throw new MigstreamError('DECOMPRESS', clenAt, `expected a compressed length of 1..${length - 1} bytes (less than the chunk), found ${clen}`, { device });
    }
    const dataOffset = r.offset;
    const compressed = r.bytes(clen, 'compressed chunk data');
    let data = compressed;
    if (!this.defer) {
      try {
        data = codec === 'lz4' ? this.lz4Page(compressed, length) : this.inflate(compressed, length);
      } catch (e) {
        throw new MigstreamError('DECOMPRESS', dataOffset, `${codec} chunk failed to decompress: ${e instanceof Error ? e.message : String(e)}`, { device });
      }
      if (data.length !== length) {
        throw new MigstreamError('DECOMPRESS', dataOffset, `${codec} chunk inflated to ${data.length} bytes, the record says ${length}`, { device });
      }
    }
    const ev: BlockChunkEvent = { type: 'block-chunk', device, sector, length, zero: false, data, codec, compressedBytes: clen, dataOffset, wireBytes: r.pos - start };
    if (this.defer) ev.encoded = true;
    this.emit(ev);
  }
}

/** Decodes a whole stream held in memory; the incremental decoder fed once. */
export function decodeAll(bytes: Uint8Array, handler: EventHandler, options?: DecoderOptions): void {
  const decoder = new StreamDecoder(handler, options);
  decoder.push(bytes);
  decoder.end();
}

function hex(v: number, digits: number): string {
  return v.toString(16).padStart(digits, '0');
}


/** A bug in a handler or in migstream itself: still reported with the offset, never as a raw crash. */
function internal(e: unknown, offset: number): MigstreamError {
  if (e instanceof MigstreamError) return e;
  const err = new MigstreamError('UNSUPPORTED', offset, `internal error: ${(e as Error)?.message ?? String(e)}`);
  (err as { cause?: unknown }).cause = e;
  return err;
}

export type { StreamEvent };
