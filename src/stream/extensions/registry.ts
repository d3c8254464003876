import type { ByteReader } from '../../codec/byte-reader.js';
import { MigstreamError } from '../../codec/errors.js';
import type { ExtensionManifest } from '../manifest.js';
import { blockChunks } from './block-chunks.js';
import { chunkCompression } from './chunk-compression.js';
import { type BlockHeader, type DeclaredExtension, type DeclaredSet, declaredEntry, type Extension, type RecordContext } from './extension.js';
import { iterationDigests } from './iteration-digests.js';
import { lz4Pages } from './lz4-pages.js';

/**
 * The table of migstream's own extensions. The decoder and the manifest
 * reader know extensions only through it: a new extension is a module and a
 * row here. Order matters where one builds on another (block-chunks' length
 * before chunk-compression's payload).
 */
export const EXTENSIONS: readonly Extension[] = [lz4Pages, blockChunks, chunkCompression, iterationDigests];

/** Extensions this version of migstream reads, with the newest version of each. */
export const SUPPORTED_EXTENSIONS: Readonly<Record<string, number>> = Object.fromEntries(EXTENSIONS.map((e) => [e.name, e.version]));

/** The extensions one stream declared, looked up by the record type or block flag they own. */
export class DeclaredExtensions implements DeclaredSet {
  private readonly byRamType = new Map<number, DeclaredExtension>();
  private readonly byBlockFlag = new Map<number, DeclaredExtension>();
  readonly names = new Set<string>();

  /** Checks and enables what `manifest` declares of `supported` (an entry it does not list is not ours to read). */
  declare(manifest: ExtensionManifest, at: number, pageSize: number, supported: Readonly<Record<string, number>>): void {
    for (const ext of EXTENSIONS) {
      const entry = declaredEntry(manifest, ext);
      if (entry && supported[ext.name] !== undefined) this.enable(ext, ext.declare(entry, manifest, at, pageSize));
    }
  }

  /** Enables extensions by name with their default parameters (a reader told out of band, as tests do). */
  enableByName(names: Iterable<string>, pageSize: number): void {
    const wanted = new Set(names);
    const manifest: ExtensionManifest = { format: 'migstream', version: 1, extensions: [] };
    for (const ext of EXTENSIONS) if (wanted.has(ext.name)) manifest.extensions.push(ext.defaultEntry(pageSize));
    for (const ext of EXTENSIONS) if (wanted.has(ext.name)) this.enable(ext, ext.declare(ext.defaultEntry(pageSize), manifest, 0, pageSize));
  }

  private enable(ext: Extension, declared: DeclaredExtension): void {
    this.names.add(ext.name);
    if (ext.ramFlag !== undefined) this.byRamType.set(ext.ramFlag, declared);
    if (ext.block) this.byBlockFlag.set(ext.block.flag, declared);
  }

  ram(type: number): DeclaredExtension | undefined {
    return this.byRamType.size === 0 ? undefined : this.byRamType.get(type);
  }

  readBlockHeader(ctx: RecordContext, r: ByteReader, rec: BlockHeader): void {
    for (const ext of BLOCK_HEADER) if (rec.flags & ext.block!.flag) this.blockReader(ext, rec).readBlockHeader!(ctx, r, rec);
  }

  /** Reads the payload when a payload extension's flag is set; false: a plain chunk follows. */
  readBlockPayload(ctx: RecordContext, r: ByteReader, rec: BlockHeader): boolean {
    for (const ext of BLOCK_PAYLOAD) {
      if (rec.flags & ext.block!.flag) {
        this.blockReader(ext, rec).readBlockPayload!(ctx, r, rec);
        return true;
      }
    }
    return false;
  }

  private blockReader(ext: Extension, rec: BlockHeader): DeclaredExtension {
    const d = this.byBlockFlag.get(ext.block!.flag);
    if (d) return d;
    throw new MigstreamError(
      'BAD_BLOCK_RECORD',
      rec.at,
      `Unknown block migration flags: 0x${rec.flags.toString(16)} (${ext.block!.what}, but no manifest declared the "${ext.name}" extension)`,
      { device: rec.device },
    );
  }
}

const BLOCK_HEADER = EXTENSIONS.filter((e) => e.block?.phase === 'header');
const BLOCK_PAYLOAD = EXTENSIONS.filter((e) => e.block?.phase === 'payload');

export { lz4PagesEntry, type Lz4PagesParams } from './lz4-pages.js';
export { blockChunksEntry, type BlockChunksParams } from './block-chunks.js';
export { chunkCompressionEntry, type ChunkCompressionParams } from './chunk-compression.js';
export { iterationDigestsEntry, DIGEST_ALGORITHMS, type IterationDigestsParams } from './iteration-digests.js';
export { lz4Pages, blockChunks, chunkCompression, iterationDigests };
