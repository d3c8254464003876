import type { ByteReader } from '../../codec/byte-reader.js';
import type { ErrorCode } from '../../codec/errors.js';
import type { DecoderLimits, PageTarget } from '../decoder-options.js';
import type { EventHandler, PageKind, RamBlockInfo } from '../events.js';
import type { PageInflater } from '../inflate.js';
import type { ExtensionEntry, ExtensionManifest } from '../manifest.js';

/** What a record reader may use of the decoder: its output, limits, codecs and str8 names. */
export interface RecordContext {
  readonly emit: EventHandler;
  readonly limits: DecoderLimits;
  /** The stream's target page size (the configuration may change it before the first record). */
  readonly pageSize: number;
  /** Compressed payloads pass on as they are, `encoded: true` (`decompress: "defer"`). */
  readonly defer: boolean;
  readonly inflate: PageInflater;
  readonly lz4Page: PageInflater;
  /** DecoderOptions.pageTarget with the decoder that fills it (undefined: lz4Page's fresh pages). */
  readonly lz4Into?: { target: PageTarget; decode(block: Uint8Array, out: Uint8Array): void };
  /** The extensions the stream's manifest declared. */
  readonly extensions: DeclaredSet;
  /** A str8 name (section idstr, RAMBlock idstr, block device) within limits.maxIdstrLength. */
  name(r: ByteReader, what: string, code: ErrorCode): string;
}

/** Lookups of the declared extensions by the record type or flag they own (src/stream/extensions/registry.ts). */
export interface DeclaredSet {
  ram(type: number): DeclaredExtension | undefined;
  readBlockHeader(ctx: RecordContext, r: ByteReader, rec: BlockHeader): void;
  readBlockPayload(ctx: RecordContext, r: ByteReader, rec: BlockHeader): boolean;
}

/** The RAM section's state a RAM record of an extension may use. */
export interface RamBlocks {
  /** The RAMBlock a record names: its idstr, or the last one named when CONTINUE is set. */
  blockRef(r: ByteReader, flags: number, at: number): RamBlockInfo;
  lastBlock: RamBlockInfo | undefined;
  /** Index of the RAM section (iteration) being read. */
  readonly iteration: number;
}

/** A RAM record header as read: `at` is its offset, `start` its position in the reader, `addr` the offset bits. */
export interface RamHeader {
  at: number;
  start: number;
  flags: number;
  addr: number;
}

/** A page an extension's RAM record carried: the RAM reader checks its offset and emits it like QEMU's pages. */
export interface PageRecord {
  kind: PageKind;
  block: RamBlockInfo;
  data: Uint8Array;
  dataOffset: number;
  compressedBytes?: number;
}

/** A block record up to the extension fields: header, device, zero flag, the chunk length so far. */
export interface BlockHeader {
  at: number;
  start: number;
  flags: number;
  device: string;
  sector: number;
  zero: boolean;
  length: number;
  /** An extension read an explicit length (QEMU's chunks are 1 MiB). */
  explicitLength: boolean;
}

/** What a declared extension reads, bound to the parameters its manifest entry gave. */
export interface DeclaredExtension {
  /** Reads the rest of a RAM record of the extension's type; a page comes back for the RAM reader to emit. */
  readRam?(ctx: RecordContext, ram: RamBlocks, r: ByteReader, rec: RamHeader): PageRecord | undefined;
  /** Reads the fields its block flag adds after the device name (block-chunks: the length). */
  readBlockHeader?(ctx: RecordContext, r: ByteReader, rec: BlockHeader): void;
  /** Reads the payload of a block record with its flag and emits the chunk (chunk-compression). */
  readBlockPayload?(ctx: RecordContext, r: ByteReader, rec: BlockHeader): void;
}

/**
 * One of migstream's own extensions (docs/extension-format.md): its manifest
 * entry, the checks of that entry, and the readers of the records it adds.
 * Every extension is one module and one row of the registry.
 */
export interface Extension {
  readonly name: string;
  /** The newest version this migstream reads and writes. */
  readonly version: number;
  /** A RAM record type of its own. */
  readonly ramFlag?: number;
  /** A block record flag of its own; `phase`: whether it adds header fields or carries the payload; `what` names such a record in errors. */
  readonly block?: { flag: number; phase: 'header' | 'payload'; what: string };
  /** The entry declaring it with default parameters for this page size (StreamDecoder.enableExtensions). */
  defaultEntry(pageSize: number): ExtensionEntry;
  /** Checks its manifest entry against the manifest and the stream (BAD_MANIFEST, UNSUPPORTED_EXTENSION at `at`). */
  declare(entry: ExtensionEntry, manifest: ExtensionManifest, at: number, pageSize: number): DeclaredExtension;
}

/** The manifest's entry for `ext`, if the manifest declares it. */
export function declaredEntry(manifest: ExtensionManifest, ext: Extension): ExtensionEntry | undefined {
  return manifest.extensions.find((e) => e.name === ext.name);
}

/** A manifest value as a message shows it: JSON (maps and arrays included), at most 80 characters. */
export function show(v: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? `${x}n` : x instanceof Uint8Array ? `<${x.length} bytes>` : x));
  } catch {
    text = undefined;
  }
  text ??= String(v);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
