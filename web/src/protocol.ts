// Messages between the page and its decoding worker, and the model the worker builds.
import type { DeviceSection, PageKind, StreamWarning } from '../../src/stream/events.js';
import type { ExtensionManifest } from '../../src/stream/manifest.js';
import type { StreamSummary } from '../../src/stream/stats.js';

export const KINDS: readonly PageKind[] = ['zero', 'normal', 'xbzrle', 'compressed', 'lz4'];

/** One page record per row, in stream order (struct of arrays: a 1 GiB guest has 262,144+ rows). */
export interface RecordTable {
  count: number;
  /** Global page index: the block's first page (BlockLayout.firstPage) + offset / page size. */
  page: Uint32Array;
  /** Index into KINDS. */
  kind: Uint8Array;
  /** RAM section (inspect's "#"). */
  iteration: Uint32Array;
  /** Stream offset of the payload (normal: the page; xbzrle: the delta; compressed/lz4: the compressed bytes). */
  dataOffset: Float64Array;
  /** Payload bytes at dataOffset (0 for a zero page). */
  dataLength: Uint32Array;
  fill: Uint8Array;
  wireBytes: Uint32Array;
  /** FNV-1a of block, offset, kind, fill and payload: what "compare" matches record by record. */
  hash: Uint32Array;
}

export interface BlockLayout {
  idstr: string;
  length: number;
  firstPage: number;
  pages: number;
}

export interface ChunkInfo {
  device: string;
  sector: number;
  length: number;
  zero: boolean;
  codec?: string;
  dataOffset: number;
  wireBytes: number;
  /** Number of the section (in stream order, from 0) the chunk came in. */
  section: number;
}

export interface DigestInfo {
  block: string;
  iteration: number;
  count: number;
  algorithm: string;
  digest: string;
  offset: number;
}

export interface SectionMark {
  kind: string;
  idstr: string;
  sectionId: number;
  offset: number;
}

export interface ErrorInfo {
  code: string;
  offset: number;
  message: string;
  detail: string;
  context: Record<string, string>;
  /** Bytes around the offset, for the hex view. */
  around: Uint8Array;
  aroundStart: number;
}

/** Everything the page shows about one stream. */
export interface StreamModel {
  name: string;
  fileBytes: number;
  summary: StreamSummary;
  uuid: string | null;
  targetPageBits: number | null;
  layout: BlockLayout[];
  /** Records per page (global index). */
  sent: Uint32Array;
  /** Bit per kind (1 << KINDS index) of every record of the page. */
  how: Uint8Array;
  /** KINDS index + 1 of the page's last record (0: never sent). */
  last: Uint8Array;
  records: RecordTable;
  /** Section headers in stream order (capped; `sectionsTotal` counts all). */
  sections: SectionMark[];
  sectionsTotal: number;
  chunks: ChunkInfo[];
  chunksTotal: number;
  digests: DigestInfo[];
  commands: { name: string; offset: number | null; length: number }[];
  manifest: ExtensionManifest | null;
  devices: DeviceSection[];
  /** FNV-1a of each device section's data (same order as `devices`). */
  deviceHashes: number[];
  vmdesc: unknown;
  warnings: StreamWarning[];
  error: ErrorInfo | null;
}

export type ToWorker =
  | { type: 'decode'; id: number; file: Blob; name: string }
  | { type: 'page'; id: number; slot: number; page: number }
  | { type: 'bytes'; id: number; slot: number; start: number; length: number };

export type FromWorker =
  | { type: 'progress'; id: number; bytes: number; total: number }
  | { type: 'done'; id: number; model: StreamModel }
  | { type: 'page'; id: number; content: Uint8Array | null; error: string | null }
  | { type: 'bytes'; id: number; start: number; bytes: Uint8Array }
  | { type: 'failed'; id: number; message: string };
