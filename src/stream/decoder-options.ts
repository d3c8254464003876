import type { RamBlockInfo, StreamWarning } from './events.js';
import type { PageInflater } from './inflate.js';

/** See DecoderOptions.pageTarget. */
export type PageTarget = (block: RamBlockInfo, offset: number, pageSize: number) => Uint8Array | undefined;

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
   * Also bounds a postcopy PACKAGED blob. Default 64 MiB.
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
  /** Inflater for COMPRESS_PAGE records. Default: the codec table's (node:zlib under migstream/node, else fflate). */
  inflatePage?: PageInflater;
  /** Decoder for migstream's LZ4 page records. Default: the codec table's (lz4-wasm-nodejs under migstream/node, else migstream's LZ4). */
  lz4Page?: PageInflater;
  /**
   * Where a whole LZ4 page record is decoded: a writable pageSize-byte view,
   * which the handler then gets as the event's `data` (a Transcoder's
   * `pageTarget`: the page in its RAM image, so the page is neither allocated
   * nor copied once more), or undefined for a fresh page. Asked only for a
   * record whose offset lies inside its RAMBlock; on a decode error the view
   * is left as it was. Ignored with a custom `lz4Page`.
   */
  pageTarget?: PageTarget;
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
