import { ByteReader } from '../codec/byte-reader.js';
import { concatBytes } from '../codec/concat.js';
import { asMigstreamError, MigstreamError, NeedMoreData, type ErrorCode } from '../codec/errors.js';
import {
  COMMAND_LENGTHS,
  COMMAND_NAMES,
  DEFAULT_PAGE_SIZE,
  VM_COMMAND,
  VM_EOF,
  VM_SECTION_END,
  VM_SECTION_FOOTER,
  VM_SECTION_FULL,
  VM_SECTION_PART,
  VM_SECTION_START,
  MIGSTREAM_MANIFEST_COMMAND,
} from './constants.js';
import { decodeManifest } from './manifest.js';
import { codecSet, defaultImpl, lz4Decompress } from './codec-table.js';
import type { EventHandler, SectionInfo, SectionKind, StreamEvent, StreamWarning } from './events.js';
import { parseTail } from './tail.js';
import { RamRecordReader } from './ram-records.js';
import { readBlockRecord } from './block-records.js';
import { BitmapRecordReader } from './bitmap-records.js';
import { commandInfo, readPackage } from './commands.js';
import { hex } from './bytes.js';
import { InputWindow } from './input-window.js';
import { readConfigurationRecord, readStreamHeader } from './configuration.js';
import { DeclaredExtensions, SUPPORTED_EXTENSIONS } from './extensions/registry.js';
import type { RecordContext } from './extensions/extension.js';

export { DEFAULT_LIMITS, type DecoderLimits, type DecoderOptions, type PageTarget } from './decoder-options.js';
import { DEFAULT_LIMITS, type DecoderLimits, type DecoderOptions } from './decoder-options.js';

type State = 'header' | 'configuration' | 'top' | 'ram' | 'block' | 'dirty-bitmap' | 'footer' | 'tail' | 'done' | 'failed';

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
  private readonly supportedExtensions: Readonly<Record<string, number>>;
  private readonly strict: boolean;
  private readonly onWarning: ((warning: StreamWarning) => void) | undefined;
  /** A manifest may only come before the first section, and only once. */
  private sawSection = false;
  private manifestSeen = false;
  private pageSize: number;

  private state: State = 'header';
  private failure: MigstreamError | undefined;
  /** Buffered, not yet consumed bytes: buf[pos..] is at stream offset base+pos. */
  /** Absolute offset that must be buffered before the next parse attempt. */
  /** The chunks pushed and not parsed yet. */
  private readonly in = new InputWindow();
  private needed = 0;
  private needWhat = '';

  private readonly sections = new Map<number, SectionInfo>();
  private current: { section: SectionInfo; kind: SectionKind } | undefined;
  private footers: boolean | undefined;
  /** Extensions of ours the stream's manifest declared; none in a QEMU stream. */
  private readonly extensions = new DeclaredExtensions();
  // The record families: each reader keeps its section's state and sees the decoder only through `records`.
  private readonly records: RecordContext;
  private readonly ram: RamRecordReader;
  private readonly bitmaps = new BitmapRecordReader();

  /** Asked before each unit: true stops parsing (the consumer is full) until resume(). */
  private pauseWhen: (() => boolean) | undefined;
  private pausedAt = false;

  private tailStart = 0;
  private tailKept: Uint8Array[] = [];
  private tailBytes = 0;

  constructor(handler: EventHandler, options: DecoderOptions = {}) {
    this.emit = handler;
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.supportedExtensions = options.extensions ?? SUPPORTED_EXTENSIONS;
    this.strict = options.strict === true;
    this.onWarning = options.onWarning;
    this.pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE;
    const codecs = codecSet(defaultImpl());
    const decoder = this;
    this.records = {
      emit: handler,
      limits: this.limits,
      inflate: options.inflatePage ?? ((src, pageSize) => codecs.zlib.inflate(src, pageSize)),
      lz4Page: options.lz4Page ?? ((src, size) => lz4Decompress(codecs, src, size)),
      lz4Into: options.pageTarget && !options.lz4Page ? { target: options.pageTarget, decode: codecs.lz4DecompressInto } : undefined,
      defer: options.decompress === 'defer',
      extensions: this.extensions,
      get pageSize() {
        return decoder.pageSize; // the configuration may set it
      },
      name: (r, what, code) => this.name(r, what, code),
    };
    this.ram = new RamRecordReader(this.records);
  }

  /** Accepts the records of these extensions, with default parameters, as if a manifest declared them. */
  enableExtensions(names: Iterable<string>): void {
    this.extensions.enableByName(names, this.pageSize);
  }

  /** Stream offset of the next byte the decoder has not consumed. */
  get offset(): number {
    return this.in.base + this.in.pos;
  }

  get finished(): boolean {
    return this.state === 'done';
  }

  /** Whether bytes of `buffer` are still to be parsed here (a reader that refills its buffers waits until not). */
  holds(buffer: ArrayBufferLike): boolean {
    const w = this.in;
    return (w.buf.buffer === buffer && w.pos < w.buf.length) || w.pending.some((p) => p.buffer === buffer);
  }

  /**
   * Backpressure for async drivers: `when` is asked before each unit (record,
   * section header), and while it says true the decoder stops with the rest
   * buffered, so one push() can't flood a full consumer. Units stay atomic.
   */
  pauseWhile(when: (() => boolean) | undefined): void {
    this.pauseWhen = when;
  }

  /** Whether parsing stopped because the pause condition held; call resume() once there is room. */
  get paused(): boolean {
    return this.pausedAt;
  }

  /** Parses on after a pause (stops again at the next unit if the condition still holds). */
  resume(): void {
    if (!this.pausedAt || this.failure) return;
    this.pausedAt = false;
    this.drain();
  }

  push(input: Uint8Array): void {
    if (this.failure) throw this.failure;
    if (input.length === 0) return;
    // A Node Buffer's slice() is a view, not a copy: events carry plain Uint8Array views, whose slice() copies.
    const chunk = input.constructor === Uint8Array ? input : new Uint8Array(input.buffer, input.byteOffset, input.length);
    if (this.state === 'done') {
      this.fail(new MigstreamError('TRAILING_DATA', this.offset, 'expected the end of the stream, found more bytes'));
    }
    if (this.state === 'tail') {
      this.takeTail(chunk);
      return;
    }
    if (this.in.pos === this.in.buf.length && this.in.pendingBytes === 0) {
      this.in.base += this.in.buf.length;
      this.in.buf = chunk;
      this.in.pos = 0;
    } else {
      this.in.pending.push(chunk);
      this.in.pendingBytes += chunk.length;
    }
    if (this.pausedAt) return;
    if (this.in.base + this.in.buf.length + this.in.pendingBytes < this.needed) return;
    this.drain();
  }

  /** Parses what is buffered: compact() hands run() the pending chunks a piece at a time. */
  private drain(final = false): void {
    for (;;) {
      this.in.compact(this.needed);
      this.run();
      if (this.in.pendingBytes === 0 || this.pausedAt || this.state === 'failed' || this.state === 'done') return;
      if (this.state === 'tail') {
        // what follows is device state: taken as push() takes it once in the tail
        const rest = this.in.pending;
        this.in.pending = [];
        this.in.pendingBytes = 0;
        for (const c of rest) this.takeTail(c);
        return;
      }
      if (!final && this.in.base + this.in.buf.length + this.in.pendingBytes < this.needed) return;
    }
  }

  /** Declares the end of input; throws TRUNCATED if the stream stopped early. */
  end(): void {
    if (this.failure) throw this.failure;
    if (this.state === 'done') return;
    this.pauseWhen = undefined; // the end parses what is left (at most the held-back unit) in one go
    this.pausedAt = false;
    if (this.state !== 'tail') {
      // Parse what push() held back for a large unit's look-ahead (see run()).
      this.drain(true);
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
    this.in.compact(this.needed);
    const what = this.needed > this.offset ? this.needWhat : this.state === 'header' ? 'the stream header' : 'the next record';
    this.fail(new MigstreamError('TRUNCATED', this.in.base + this.in.buf.length, `unexpected end of stream: expected ${what}`, this.context()));
  }

  private fail(error: MigstreamError): never {
    this.state = 'failed';
    this.failure = error;
    throw error;
  }

  private run(): void {
    const r = new ByteReader(this.in.buf, this.in.base, this.in.pos);
    try {
      for (;;) {
        this.in.pos = r.pos;
        if (this.pauseWhen !== undefined && this.state !== 'tail' && this.state !== 'done' && this.pauseWhen()) {
          this.pausedAt = true;
          return;
        }
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
            if (this.ram.read(r, this.current!.kind)) this.state = 'footer';
            break;
          case 'dirty-bitmap':
            if (this.bitmaps.read(r, this.emit)) this.state = 'footer';
            break;
          case 'block':
            if (readBlockRecord(this.records, r)) this.state = 'footer';
            break;
          case 'footer':
            this.readFooter(r);
            break;
          case 'tail': {
            const rest = this.in.buf.subarray(r.pos);
            this.in.pos = this.in.buf.length;
            this.tailStart = this.in.base + r.pos;
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
        const partial = this.in.buf.length - this.in.pos;
        this.needed = partial > 16384 ? Math.max(e.needed, this.in.base + this.in.pos + 2 * partial) : e.needed;
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
        new MigstreamError(
          'LIMIT',
          this.tailStart + this.limits.maxTailBytes,
          `device state after the last iterable section exceeds the limit of ${this.limits.maxTailBytes} bytes`,
        ),
      );
    }
    this.tailKept.push(chunk.slice());
    this.tailBytes += chunk.length;
    this.emit({ type: 'device-state', bytes: chunk });
  }

  // Header: be32 magic, be32 version.
  private readHeader(r: ByteReader): void {
    this.emit({ type: 'header', version: readStreamHeader(r) });
    this.state = 'configuration';
  }

  private readConfiguration(r: ByteReader): void {
    const configuration = readConfigurationRecord(r, this.limits.maxMachineName);
    this.state = 'top';
    if (!configuration) return; // machine types <= 2.3 send no configuration
    if (configuration.targetPageBits !== undefined) this.pageSize = 1 << configuration.targetPageBits;
    this.ram.ignoreShared = configuration.capabilities.includes('x-ignore-shared');
    this.emit({ type: 'configuration', configuration });
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
      // migstream's extension manifest: msgpack, before any section, at most once
      if (this.sawSection) throw new MigstreamError('BAD_MANIFEST', at, 'the extension manifest must come before the first section');
      if (this.manifestSeen) throw new MigstreamError('BAD_MANIFEST', at, 'a second extension manifest');
      this.manifestSeen = true;
      const manifest = decodeManifest(payload, at, this.supportedExtensions);
      this.extensions.declare(manifest, at, this.pageSize, this.supportedExtensions);
      this.emit({ type: 'manifest', manifest, payload });
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
    // Postcopy commands and PACKAGED's nested stream: src/stream/commands.ts (COLO stays unsupported there).
    const info = commandInfo(command, payload, at, this.pageSize);
    if (info.name === 'POSTCOPY_ADVISE' && info.hostPageSizes !== undefined && info.hostPageSizes !== this.pageSize) this.ram.postcopyHugePages = true;
    const pkg = info.name === 'PACKAGED' ? readPackage(r, info.length, this.limits.maxTailBytes, this.pageSize) : undefined;
    this.emit(
      pkg ? { type: 'command', command, name, payload, info, package: pkg, offset: at } : { type: 'command', command, name, payload, info, offset: at },
    );
  }

  // A str8 name (section idstr, RAMBlock idstr, block device) within maxIdstrLength.
  private name(r: ByteReader, what: string, code: ErrorCode): string {
    const len = r.peekU8(what);
    if (len > this.limits.maxIdstrLength) {
      throw new MigstreamError('LIMIT', r.offset, `${what} of ${len} bytes exceeds the limit of ${this.limits.maxIdstrLength}`);
    }
    return r.str8(what, code);
  }
}

/** Decodes a whole stream held in memory; the incremental decoder fed once. */
export function decodeAll(bytes: Uint8Array, handler: EventHandler, options?: DecoderOptions): void {
  const decoder = new StreamDecoder(handler, options);
  decoder.push(bytes);
  decoder.end();
}

/** A bug in a handler or in migstream itself: still reported with the offset, never as a raw crash. */
const internal = asMigstreamError;

export type { StreamEvent };
