import type { ErrorCode } from '../codec/errors.js';
import type { DirtyBitmapRecord } from './dirty-bitmap.js';
import type { ExtensionManifest } from './manifest.js';
import type { CommandInfo, PackageInfo } from './commands.js';

/**
 * The event vocabulary: every part of a migration stream becomes one of these.
 * Byte payloads are views into the decoder's buffer and are valid only during
 * the callback that receives them; copy what you keep.
 */

export interface RamBlockInfo {
  idstr: string;
  /** used_length in bytes. */
  length: number;
  /** Only present for postcopy hugepage-backed blocks. */
  pageSize?: number;
  /** Guest physical address, present when x-ignore-shared is on. */
  mrAddr?: number;
}

export interface ConfigurationInfo {
  machine: string;
  /** Names of validated capabilities (configuration/capabilities). */
  capabilities: string[];
  targetPageBits?: number;
  uuid?: Uint8Array;
  /** The configuration record exactly as read, for pass-through. */
  raw: Uint8Array;
}

export type SectionKind = 'start' | 'part' | 'end' | 'full';

export interface SectionInfo {
  sectionId: number;
  idstr: string;
  instanceId: number;
  versionId: number;
}

/** compressed: QEMU's zlib COMPRESS_PAGE; lz4: migstream's LZ4 page (an extension). */
export type PageKind = 'zero' | 'normal' | 'xbzrle' | 'compressed' | 'lz4';

export interface PageEvent {
  type: 'page';
  kind: PageKind;
  block: RamBlockInfo;
  /** Byte offset inside the RAMBlock. */
  offset: number;
  /** Target page size of the stream. */
  pageSize: number;
  /** zero: the fill byte. */
  fill: number;
  /**
   * normal: the page; compressed: the inflated page; xbzrle: the encoded delta
   * (apply it to the current content of the page); zero: empty.
   */
  data: Uint8Array;
  /** Absolute stream offset of `data` (for errors while applying XBZRLE). */
  dataOffset: number;
  /** Bytes this record took on the wire. */
  wireBytes: number;
  /** compressed/lz4: bytes of the compressed payload (without the record header and length). */
  compressedBytes?: number;
  /**
   * True when `data` still holds the compressed payload: the decoder was told
   * to leave decompression to its caller (a worker pool). Never set otherwise.
   */
  encoded?: boolean;
}

/**
 * migstream's per-iteration digest record (extension "iteration-digests"):
 * the writer's count and hash of the page records it sent for `block` in
 * this RAM section. The decoder only reads it; whoever applies RAM checks it
 * (VerifyingRamStore in src/stream/digest.ts).
 */
export interface RamDigestEvent {
  type: 'ram-digest';
  block: RamBlockInfo;
  /** Index of the RAM section it belongs to: the `index` of the iteration-end that follows (inspect's "#"). */
  iteration: number;
  /** Page records of the block since its previous digest record in this section (or the section start). */
  count: number;
  /** The manifest's algorithm, e.g. "xxh64". */
  algorithm: string;
  /** The digest bytes (a copy: valid after the callback). */
  digest: Uint8Array;
  /** Absolute stream offset of the record. */
  offset: number;
  wireBytes: number;
}

export interface BlockChunkEvent {
  type: 'block-chunk';
  device: string;
  /** 512-byte sector number of the chunk start. */
  sector: number;
  /** Bytes the chunk covers on the device (QEMU: always 1 MiB; the receiver clips). */
  length: number;
  zero: boolean;
  /** The payload (empty when zero): the chunk's bytes, or the compressed payload while `encoded`. */
  data: Uint8Array;
  /** The record carried the chunk compressed with this codec (extension "chunk-compression")… */
  codec?: 'zlib' | 'lz4';
  /** …in this many bytes. */
  compressedBytes?: number;
  /** With the decoder's `decompress: "defer"`: `data` is still compressed, for a worker pool to inflate. */
  encoded?: boolean;
  /** Absolute stream offset of the payload (for decompression errors). */
  dataOffset: number;
  wireBytes: number;
}

export type StreamEvent =
  | { type: 'header'; version: number }
  | { type: 'configuration'; configuration: ConfigurationInfo }
  | { type: 'section'; kind: SectionKind; section: SectionInfo; offset: number }
  | { type: 'section-footer'; section: SectionInfo; present: boolean }
  /** `info`: the payload decoded; PACKAGED: `package` holds the N bytes after the record and its nested stream; `offset`: of the 0x08 byte. */
  | { type: 'command'; command: number; name: string; payload: Uint8Array; info?: CommandInfo; package?: PackageInfo; offset?: number }
  /** migstream's extension manifest (docs/extension-format.md), right after the configuration. */
  | { type: 'manifest'; manifest: ExtensionManifest; payload: Uint8Array }
  /** MEM_SIZE; `offset`: absolute stream offset of the record. */
  | { type: 'ram-blocks'; blocks: RamBlockInfo[]; wireBytes: number; offset: number }
  | PageEvent
  | RamDigestEvent
  | { type: 'ram-flush' }
  /** RAM EOS: the end of one RAM section, the decoder's iteration barrier; `offset`: absolute stream offset of the EOS record. */
  | { type: 'iteration-end'; index: number; kind: SectionKind; offset: number }
  | BlockChunkEvent
  | { type: 'block-progress'; percent: number }
  | { type: 'block-eos' }
  /**
   * A record of the dirty-bitmap section (block dirty bitmaps), kept with its raw bytes;
   * `node`/`bitmap`: the aliases it refers to, also when the record reuses the previous ones.
   */
  | { type: 'dirty-bitmap'; record: DirtyBitmapRecord; node: string; bitmap: string }
  /** Device state after the last iterable section, passed through verbatim, in pieces. */
  | { type: 'device-state'; bytes: Uint8Array }
  /** A problem QEMU 7.2 loads through (a damaged vmdesc trailer), reported before `end`; `strict` decoding throws it instead. */
  | { type: 'warning'; warning: StreamWarning }
  | { type: 'end'; tail: TailInfo };

export interface StreamWarning {
  code: ErrorCode;
  /** Absolute stream offset of the problem. */
  offset: number;
  message: string;
}

/** What the decoder learnt from the device-state tail once the stream ended. */
export interface TailInfo {
  /** FULL sections, split with the help of the vmdesc when present. */
  devices: DeviceSection[];
  vmdesc?: unknown;
  vmdescBytes: number;
  /** False when the tail exceeded the decoder's kept-bytes limit and was not parsed. */
  parsed: boolean;
  /** Set when the trailer after EOF was damaged and the sections were split without it (not in strict decoding). */
  warning?: StreamWarning;
}

export interface DeviceSection extends SectionInfo {
  /** Absolute stream offset of the section's type byte. */
  offset: number;
  /** Bytes of section data (between header and footer). */
  size: number;
}

export type EventHandler = (event: StreamEvent) => void;
