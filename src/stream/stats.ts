import type { DeviceSection, PageKind, RamBlockInfo, StreamEvent, StreamWarning } from './events.js';
import type { ExtensionManifest } from './manifest.js';
import { DBM_START_ENABLED, DBM_START_PERSISTENT } from './dirty-bitmap.js';
import { unreachable } from './clone-event.js';
import { declaredEntry } from './extensions/extension.js';
import { iterationDigests } from './extensions/iteration-digests.js';

/** Compressed pages of one codec: how much they took against the pages they carry. */
export interface CompressionStats {
  pages: number;
  /** Compressed payload bytes (without record headers and lengths). */
  payloadBytes: number;
  /** payloadBytes / (pages × page size). */
  ratio: number;
}

export interface KindCount {
  /** Records of this kind. */
  pages: number;
  /** Bytes those records took on the wire, headers included. */
  bytes: number;
}

export type PageCounts = Record<PageKind, KindCount>;

/** One RAM section (START, PART or END): the unit between two decoder barriers. */
export interface IterationStats extends PageCounts {
  index: number;
  kind: 'start' | 'part' | 'end' | 'full';
  /** Digest records in this RAM section (extension "iteration-digests"). */
  digests: number;
}

/** migstream's per-iteration digests (extension "iteration-digests"). */
export interface DigestStats {
  /** The manifest's algorithm, e.g. "xxh64". */
  algorithm: string;
  /** Digest records. */
  records: number;
  /** Page records they cover (the sum of their counts). */
  pageRecords: number;
  /** Bytes the digest records took on the wire. */
  bytes: number;
  /** True once a reader checked every digest against the RAM it applied (inspect does). */
  verified: boolean;
}

export interface BlockDeviceStats {
  device: string;
  chunks: number;
  zeroChunks: number;
  /** Payload bytes on the wire (compressed chunks count their compressed size). */
  bytes: number;
  /** Chunks carried compressed (extension "chunk-compression"). */
  compressedChunks: number;
  /** Bytes those compressed chunks hold once decompressed. */
  compressedChunkBytes: number;
  /** End of the highest chunk sent, in bytes (an upper bound of the device size). */
  extent: number;
  chunkSizes: number[];
}

/** One block dirty bitmap of the dirty-bitmap section (QEMU's dirty-bitmaps capability). */
export interface DirtyBitmapStats {
  /** Node (device) alias and bitmap alias as the stream names them. */
  node: string;
  bitmap: string;
  granularity: number;
  /** START flags: recording on the source, persistent (qcow2). */
  enabled: boolean;
  persistent: boolean;
  /** Granules marked dirty in the BITS records (× granularity: QEMU's query-block `count`). */
  dirtyGranules: number;
  bitsRecords: number;
  /** A COMPLETE record arrived. */
  complete: boolean;
}

export interface StreamSummary {
  streamBytes: number;
  version: number;
  machine: string | null;
  capabilities: string[];
  pageSize: number;
  ramBlocks: RamBlockInfo[];
  iterations: IterationStats[];
  totals: PageCounts;
  blockDevices: BlockDeviceStats[];
  blockProgress: number | null;
  commands: { name: string; length: number }[];
  sections: { sectionId: number; idstr: string; instanceId: number; versionId: number; start: number; part: number; end: number }[];
  devices: Omit<DeviceSection, 'sectionId'>[] | null;
  deviceStateBytes: number;
  vmdesc: boolean;
  vmdescBytes: number;
  /** Problems QEMU 7.2 loads through (a damaged vmdesc trailer): `warning` events. */
  warnings: StreamWarning[];
  /** migstream's extension manifest, or null for a plain QEMU stream. */
  manifest: ExtensionManifest | null;
  /** zlib: QEMU's COMPRESS_PAGE records; lz4: migstream's LZ4 pages. */
  compression: { zlib: CompressionStats; lz4: CompressionStats };
  /** Iteration digests, or null when the stream does not declare them. */
  digests: DigestStats | null;
  /** Block dirty bitmaps (the dirty-bitmap section), in the order of their START records. */
  dirtyBitmaps: DirtyBitmapStats[];
}

const newCounts = (): PageCounts => ({
  zero: { pages: 0, bytes: 0 },
  normal: { pages: 0, bytes: 0 },
  xbzrle: { pages: 0, bytes: 0 },
  compressed: { pages: 0, bytes: 0 },
  lz4: { pages: 0, bytes: 0 },
});

const POPCOUNT = Uint8Array.from({ length: 256 }, (_, v) => {
  let n = 0;
  for (; v; v &= v - 1) n++;
  return n;
});

/** Collects what `migstream inspect` reports, from the event stream alone. */
export class StatsCollector {
  readonly summary: StreamSummary = {
    streamBytes: 0,
    version: 0,
    machine: null,
    capabilities: [],
    pageSize: 4096,
    ramBlocks: [],
    iterations: [],
    totals: newCounts(),
    blockDevices: [],
    blockProgress: null,
    commands: [],
    sections: [],
    devices: null,
    deviceStateBytes: 0,
    vmdesc: false,
    vmdescBytes: 0,
    warnings: [],
    manifest: null,
    compression: { zlib: { pages: 0, payloadBytes: 0, ratio: 0 }, lz4: { pages: 0, payloadBytes: 0, ratio: 0 } },
    digests: null,
    dirtyBitmaps: [],
  };
  private current: IterationStats | undefined;
  private readonly disks = new Map<string, BlockDeviceStats>();

  handle = (ev: StreamEvent): void => {
    const s = this.summary;
    switch (ev.type) {
      case 'header':
        s.version = ev.version;
        return;
      case 'configuration':
        s.machine = ev.configuration.machine;
        s.capabilities = ev.configuration.capabilities;
        if (ev.configuration.targetPageBits !== undefined) s.pageSize = 1 << ev.configuration.targetPageBits;
        return;
      case 'section': {
        let entry = s.sections.find((x) => x.sectionId === ev.section.sectionId);
        if (!entry) {
          entry = { ...ev.section, start: 0, part: 0, end: 0 };
          s.sections.push(entry);
        }
        if (ev.kind !== 'full') entry[ev.kind]++;
        if (ev.section.idstr === 'ram') {
          this.current = { index: s.iterations.length, kind: ev.kind, ...newCounts(), digests: 0 };
          s.iterations.push(this.current);
        }
        return;
      }
      case 'command':
        s.commands.push({ name: ev.name, length: ev.payload.length });
        return;
      case 'manifest': {
        s.manifest = ev.manifest;
        const d = declaredEntry(ev.manifest, iterationDigests);
        if (d) s.digests = { algorithm: String(d.params.algorithm), records: 0, pageRecords: 0, bytes: 0, verified: false };
        return;
      }
      case 'ram-digest':
        this.current!.digests++;
        if (s.digests) {
          s.digests.records++;
          s.digests.pageRecords += ev.count;
          s.digests.bytes += ev.wireBytes;
        }
        return;
      case 'ram-blocks':
        s.ramBlocks = ev.blocks.map((b) => ({ ...b }));
        return;
      case 'page': {
        s.pageSize = ev.pageSize;
        const it = this.current![ev.kind];
        it.pages++;
        it.bytes += ev.wireBytes;
        const t = s.totals[ev.kind];
        t.pages++;
        t.bytes += ev.wireBytes;
        if (ev.compressedBytes !== undefined) {
          const c = s.compression[ev.kind === 'lz4' ? 'lz4' : 'zlib'];
          c.pages++;
          c.payloadBytes += ev.compressedBytes;
          c.ratio = c.payloadBytes / (c.pages * ev.pageSize);
        }
        return;
      }
      case 'block-chunk': {
        let d = this.disks.get(ev.device);
        if (!d) {
          d = { device: ev.device, chunks: 0, zeroChunks: 0, bytes: 0, compressedChunks: 0, compressedChunkBytes: 0, extent: 0, chunkSizes: [] };
          this.disks.set(ev.device, d);
          s.blockDevices.push(d);
        }
        d.chunks++;
        if (ev.zero) d.zeroChunks++;
        if (ev.codec) {
          d.compressedChunks++;
          d.compressedChunkBytes += ev.length;
          d.bytes += ev.compressedBytes!;
        } else d.bytes += ev.data.length;
        d.extent = Math.max(d.extent, ev.sector * 512 + ev.length);
        if (!d.chunkSizes.includes(ev.length)) d.chunkSizes.push(ev.length);
        return;
      }
      case 'block-progress':
        s.blockProgress = ev.percent;
        return;
      case 'dirty-bitmap': {
        const r = ev.record;
        if (r.kind === 'start') {
          s.dirtyBitmaps.push({
            node: ev.node,
            bitmap: ev.bitmap,
            granularity: r.granularity!,
            enabled: (r.bitmapFlags! & DBM_START_ENABLED) !== 0,
            persistent: (r.bitmapFlags! & DBM_START_PERSISTENT) !== 0,
            dirtyGranules: 0,
            bitsRecords: 0,
            complete: false,
          });
          return;
        }
        const b = s.dirtyBitmaps.find((x) => x.node === ev.node && x.bitmap === ev.bitmap);
        if (!b) return;
        if (r.kind === 'bits') {
          b.bitsRecords++;
          if (r.data) for (const byte of r.data) b.dirtyGranules += POPCOUNT[byte]!;
        } else if (r.kind === 'complete') b.complete = true;
        return;
      }
      case 'device-state':
        s.deviceStateBytes += ev.bytes.length;
        return;
      case 'warning':
        s.warnings.push(ev.warning);
        return;
      case 'end':
        s.vmdesc = ev.tail.vmdesc !== undefined;
        s.vmdescBytes = ev.tail.vmdescBytes;
        s.devices = ev.tail.parsed ? ev.tail.devices.map(({ sectionId: _id, ...d }) => d) : null;
        return;
      case 'section-footer':
      case 'ram-flush':
      case 'iteration-end':
      case 'block-eos':
        return; // nothing to count
      default:
        unreachable(ev);
    }
  };
}
