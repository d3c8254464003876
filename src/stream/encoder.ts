import { ByteWriter } from '../codec/byte-writer.js';
import {
  BLK_CHUNK_SIZE,
  BLK_DEVICE_BLOCK,
  BLK_EOS,
  BLK_PROGRESS,
  BLK_ZERO_BLOCK,
  DEFAULT_PAGE_SIZE,
  ENCODING_FLAG_XBZRLE,
  MIGSTREAM_MANIFEST_COMMAND,
  RAM_COMPRESS_PAGE,
  RAM_CONTINUE,
  RAM_DIGEST,
  RAM_EOS,
  RAM_LZ4_PAGE,
  RAM_MEM_SIZE,
  RAM_PAGE,
  RAM_XBZRLE,
  RAM_ZERO,
  VM_COMMAND,
  VM_FILE_MAGIC,
  VM_FILE_VERSION,
  VM_SECTION_END,
  VM_SECTION_FOOTER,
  VM_SECTION_PART,
  VM_SECTION_START,
} from './constants.js';
import type { RamBlockInfo, SectionInfo } from './events.js';
import { checkDigestLength, writeDigestBody } from './extensions/iteration-digests.js';
import { writeVarChunk } from './extensions/block-chunks.js';
import { writeCompressedChunkHeader } from './extensions/chunk-compression.js';

export interface EncoderOptions {
  pageSize?: number;
  /** Flush to the sink once this many bytes are buffered. Default 256 KiB. */
  chunkSize?: number;
  /** Compressor behind compressPage() (src/stream/page-codecs.ts pageCompressor). */
  compressor?: PageCompressorFn;
  /** Compressor behind compressChunk() (extension "chunk-compression"); any input length. */
  chunkCompressor?: PageCompressorFn;
  /**
   * The sink is done with each chunk when it returns (a synchronous write):
   * chunks are views of the encoder's buffer, reused for the next ones,
   * instead of copies. Default false: the sink may keep its chunks.
   */
  sinkConsumes?: boolean;
}

/** Compresses one page for a codec; returns fresh bytes. */
export interface PageCompressorFn {
  codec: 'zlib' | 'lz4';
  compress(page: Uint8Array): Uint8Array;
  /** Optional: the same bytes as a view valid until the next call; compressPage copies them at once, saving an allocation per page. */
  compressView?(page: Uint8Array): Uint8Array;
}

/** The page-record part of a writer, what RamSender needs. */
export interface RamRecordWriter {
  readonly pageSize: number;
  continues(idstr: string): boolean;
  zeroPage(idstr: string, offset: number): unknown;
  page(idstr: string, offset: number, data: Uint8Array): unknown;
  xbzrlePage(idstr: string, offset: number, encoded: Uint8Array): unknown;
  compressPage(idstr: string, offset: number, page: Uint8Array): unknown;
  /** A digest record (extension "iteration-digests"): `count` page records of `idstr` and their digest. */
  ramDigest(idstr: string, count: number, digest: Uint8Array): unknown;
}

/**
 * Everything the transcoder writes through: StreamEncoder, or the pooled
 * writer that compresses on workers (src/stream/pool/pooled-encoder.ts).
 */
export interface StreamWriter extends RamRecordWriter {
  header(): unknown;
  raw(bytes: Uint8Array): unknown;
  sectionStart(s: SectionInfo): unknown;
  sectionPart(sectionId: number): unknown;
  sectionEnd(sectionId: number): unknown;
  footer(sectionId: number): unknown;
  command(command: number, payload: Uint8Array): unknown;
  manifest(payload: Uint8Array): unknown;
  memSize(blocks: RamBlockInfo[], ignoreShared?: boolean): unknown;
  ramEos(): unknown;
  blockChunk(device: string, sector: number, data: Uint8Array | undefined): unknown;
  blockVarChunk(device: string, sector: number, length: number, data: Uint8Array | undefined): unknown;
  /** A non-zero variable-size chunk, compressed (extension "chunk-compression") when that makes it smaller. */
  compressChunk(device: string, sector: number, data: Uint8Array): unknown;
  blockProgress(percent: number): unknown;
  blockEos(): unknown;
  flush(): void;
}

/**
 * Writes QEMU 7.2 framing and records. Output goes to `sink` in chunks; the
 * encoder owns the CONTINUE state (the last RAMBlock named), which like
 * QEMU's last_sent_block persists across sections.
 */
export class StreamEncoder implements StreamWriter {
  private readonly w = new ByteWriter(512 * 1024);
  private readonly sink: (chunk: Uint8Array) => void;
  private readonly chunkSize: number;
  readonly pageSize: number;
  private lastBlock: string | undefined;
  /** Bytes handed to the sink so far plus those buffered. */
  private flushed = 0;
  private readonly compressor: PageCompressorFn | undefined;
  private readonly chunkCompressor: PageCompressorFn | undefined;
  private readonly sinkConsumes: boolean;

  constructor(sink: (chunk: Uint8Array) => void, options: EncoderOptions = {}) {
    this.sink = sink;
    this.sinkConsumes = options.sinkConsumes === true;
    this.pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE;
    this.chunkSize = options.chunkSize ?? 256 * 1024;
    this.compressor = options.compressor;
    this.chunkCompressor = options.chunkCompressor;
  }

  get bytesWritten(): number {
    return this.flushed + this.w.length;
  }

  private maybeFlush(): void {
    if (this.w.length >= this.chunkSize) this.flush();
  }

  flush(): void {
    if (this.w.length === 0) return;
    this.flushed += this.w.length;
    if (this.sinkConsumes) {
      this.sink(this.w.view());
      this.w.reset();
    } else this.sink(this.w.take());
  }

  header(): this {
    this.w.be32(VM_FILE_MAGIC).be32(VM_FILE_VERSION);
    return this;
  }

  /** Bytes copied verbatim: a configuration record or device state. */
  raw(bytes: Uint8Array): this {
    if (bytes.length >= this.chunkSize) {
      this.flush();
      this.flushed += bytes.length;
      this.sink(this.sinkConsumes ? bytes : bytes.slice());
      return this;
    }
    this.w.bytes(bytes);
    this.maybeFlush();
    return this;
  }

  /** Configuration record: machine name and validated capabilities. */
  configuration(machine: string, capabilities: string[] = []): this {
    const name = new TextEncoder().encode(machine);
    this.w.u8(0x07).be32(name.length).bytes(name);
    if (capabilities.length > 0) {
      this.w.u8(0x05).str8('configuration/capabilities').be32(1).be32(capabilities.length);
      for (const c of capabilities) this.w.str8(c);
    }
    return this;
  }

  sectionStart(s: SectionInfo): this {
    this.w.u8(VM_SECTION_START).be32(s.sectionId).str8(s.idstr).be32(s.instanceId).be32(s.versionId);
    return this;
  }

  sectionPart(sectionId: number): this {
    this.w.u8(VM_SECTION_PART).be32(sectionId);
    return this;
  }

  sectionEnd(sectionId: number): this {
    this.w.u8(VM_SECTION_END).be32(sectionId);
    return this;
  }

  footer(sectionId: number): this {
    this.w.u8(VM_SECTION_FOOTER).be32(sectionId);
    this.maybeFlush();
    return this;
  }

  command(command: number, payload: Uint8Array): this {
    this.w.u8(VM_COMMAND).be16(command).be16(payload.length).bytes(payload);
    return this;
  }

  /** MEM_SIZE: the RAMBlock list; `mrAddr` is written for every block when x-ignore-shared is on. */
  memSize(blocks: RamBlockInfo[], ignoreShared = false): this {
    const total = blocks.reduce((n, b) => n + b.length, 0);
    this.w.be64(total + RAM_MEM_SIZE);
    for (const b of blocks) {
      this.w.str8(b.idstr).be64(b.length);
      if (ignoreShared) this.w.be64(b.mrAddr ?? 0);
    }
    this.lastBlock = undefined;
    return this;
  }

  private pageHeader(idstr: string, offset: number, flag: number): void {
    if (idstr === this.lastBlock) {
      this.w.be64(offset + (flag | RAM_CONTINUE));
    } else {
      this.w.be64(offset + flag).str8(idstr);
      this.lastBlock = idstr;
    }
  }

  zeroPage(idstr: string, offset: number): this {
    this.pageHeader(idstr, offset, RAM_ZERO);
    this.w.u8(0);
    this.maybeFlush();
    return this;
  }

  page(idstr: string, offset: number, data: Uint8Array): this {
    this.pageHeader(idstr, offset, RAM_PAGE);
    this.w.bytes(data);
    this.maybeFlush();
    return this;
  }

  /** An XBZRLE record carrying an already encoded delta (1 <= length <= page size). */
  xbzrlePage(idstr: string, offset: number, encoded: Uint8Array): this {
    this.pageHeader(idstr, offset, RAM_XBZRLE);
    this.w.u8(ENCODING_FLAG_XBZRLE).be16(encoded.length).bytes(encoded);
    this.maybeFlush();
    return this;
  }

  /** Whether a page record for `idstr` goes out with CONTINUE (same RAMBlock as the last page record). */
  continues(idstr: string): boolean {
    return idstr === this.lastBlock;
  }

  /** migstream's extension manifest (docs/extension-format.md): a command record QEMU does not have. */
  manifest(payload: Uint8Array): this {
    return this.command(MIGSTREAM_MANIFEST_COMMAND, payload);
  }

  /**
   * A compressed page: QEMU's COMPRESS_PAGE (be32 length + one zlib stream)
   * or migstream's LZ4 page (be32 length + one LZ4 block). An LZ4 block no
   * smaller than the page goes out as a PAGE record instead; zlib pages
   * always go out compressed, as QEMU sends them.
   */
  compressedPage(codec: 'zlib' | 'lz4', idstr: string, offset: number, page: Uint8Array, payload: Uint8Array): this {
    if (codec === 'lz4' && payload.length >= page.length) return this.page(idstr, offset, page);
    this.pageHeader(idstr, offset, codec === 'zlib' ? RAM_COMPRESS_PAGE : RAM_LZ4_PAGE);
    this.w.be32(payload.length).bytes(payload);
    this.maybeFlush();
    return this;
  }

  /** Compresses `page` with the encoder's compressor and writes it (see compressedPage). */
  compressPage(idstr: string, offset: number, page: Uint8Array): this {
    const c = this.compressor;
    if (!c) throw new TypeError('compressPage needs EncoderOptions.compressor');
    return this.compressedPage(c.codec, idstr, offset, page, c.compressView ? c.compressView(page) : c.compress(page));
  }

  /**
   * migstream's digest record (extension "iteration-digests",
   * docs/extension-format.md §5): names its RAMBlock like a page record
   * (CONTINUE when it is the last one named), then be64 count, u8 length
   * and the digest.
   */
  ramDigest(idstr: string, count: number, digest: Uint8Array): this {
    checkDigestLength(digest);
    this.pageHeader(idstr, 0, RAM_DIGEST);
    writeDigestBody(this.w, count, digest);
    this.maybeFlush();
    return this;
  }

  ramEos(): this {
    this.w.be64(RAM_EOS);
    return this;
  }

  /** A block-migration chunk; `data` must be the full 1 MiB payload QEMU expects. */
  blockChunk(device: string, sector: number, data: Uint8Array | undefined): this {
    const word = sector * 512 + BLK_DEVICE_BLOCK + (data ? 0 : BLK_ZERO_BLOCK);
    this.w.be64(word).str8(device);
    if (data) {
      if (data.length !== BLK_CHUNK_SIZE) throw new RangeError(`block chunk of ${data.length} bytes: QEMU needs ${BLK_CHUNK_SIZE}`);
      this.flush();
      this.raw(data);
    }
    this.maybeFlush();
    return this;
  }

  /**
   * A variable-size chunk (extension "block-chunks"): explicit length, no
   * padding; `data` undefined sends a zero chunk of `length` bytes.
   */
  blockVarChunk(device: string, sector: number, length: number, data: Uint8Array | undefined): this {
    writeVarChunk(this.w, device, sector, length, !data);
    if (data) {
      if (data.length !== length) throw new RangeError(`chunk data of ${data.length} bytes, length says ${length}`);
      this.raw(data);
    }
    this.maybeFlush();
    return this;
  }

  /**
   * A variable-size chunk carried compressed (extension "chunk-compression"):
   * codec byte, be32 length, payload. A payload not smaller than the chunk
   * goes out as a plain variable-size chunk instead.
   */
  compressedChunk(codec: 'zlib' | 'lz4', device: string, sector: number, data: Uint8Array, payload: Uint8Array): this {
    if (payload.length === 0 || payload.length >= data.length) return this.blockVarChunk(device, sector, data.length, data);
    writeCompressedChunkHeader(this.w, codec, device, sector, data.length, payload.length);
    this.raw(payload);
    this.maybeFlush();
    return this;
  }

  /** Compresses `data` with the encoder's chunk compressor and writes it (see compressedChunk). */
  compressChunk(device: string, sector: number, data: Uint8Array): this {
    const c = this.chunkCompressor;
    if (!c) throw new TypeError('compressChunk needs EncoderOptions.chunkCompressor');
    return this.compressedChunk(c.codec, device, sector, data, c.compress(data));
  }

  blockProgress(percent: number): this {
    this.w.be64(percent * 512 + BLK_PROGRESS);
    return this;
  }

  blockEos(): this {
    this.w.be64(BLK_EOS);
    return this;
  }
}
