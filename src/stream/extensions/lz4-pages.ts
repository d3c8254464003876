import type { ByteReader } from '../../codec/byte-reader.js';
import { MigstreamError } from '../../codec/errors.js';
import { lz4Bound } from '../../codec/lz4-block.js';
import { RAM_LZ4_PAGE } from '../constants.js';
import type { ExtensionEntry } from '../manifest.js';
import { type Extension, type PageRecord, type RamBlocks, type RamHeader, type RecordContext, show } from './extension.js';

/** Parameters of the "lz4-pages" extension (docs/extension-format.md §3). */
export interface Lz4PagesParams {
  /** RAM record flag of an LZ4 page (0x400). */
  flag: number;
  pageSize: number;
  /** liblz4 acceleration the writer used (informational for readers). */
  acceleration: number;
  /** Which compressor wrote the blocks ("migstream-lz4" or "lz4_flex"), informational. */
  compressor: string;
}

const NAME = 'lz4-pages';

export function lz4PagesEntry(params: Omit<Lz4PagesParams, 'flag'>): ExtensionEntry {
  return { name: NAME, version: 1, params: { flag: RAM_LZ4_PAGE, ...params } };
}

/** migstream's LZ4 page: a RAM record of type 0x400, be32 length, one LZ4 block holding exactly a page. */
export const lz4Pages: Extension = {
  name: NAME,
  version: 1,
  ramFlag: RAM_LZ4_PAGE,
  defaultEntry: (pageSize) => lz4PagesEntry({ pageSize, acceleration: 1, compressor: 'migstream-lz4' }),
  declare(entry, _manifest, at, pageSize) {
    const p = entry.params as Partial<Lz4PagesParams>;
    if (p.flag !== RAM_LZ4_PAGE) {
      throw new MigstreamError('BAD_MANIFEST', at, `${NAME}: record flag ${show(p.flag)}, expected 0x${RAM_LZ4_PAGE.toString(16)}`);
    }
    if (p.pageSize !== pageSize) {
      throw new MigstreamError('BAD_MANIFEST', at, `${NAME}: page size ${show(p.pageSize)} differs from the stream's ${pageSize}`);
    }
    if (pageSize <= RAM_LZ4_PAGE) {
      throw new MigstreamError('BAD_MANIFEST', at, `${NAME} needs pages above ${RAM_LZ4_PAGE} bytes for its record flag, the stream has ${pageSize}`);
    }
    return { readRam: readLz4Page };
  },
};

function readLz4Page(ctx: RecordContext, ram: RamBlocks, r: ByteReader, rec: RamHeader): PageRecord {
  const block = ram.blockRef(r, rec.flags, rec.at);
  const lenAt = r.offset;
  const clen = r.be32('an LZ4 page length');
  if (clen === 0 || clen > lz4Bound(ctx.pageSize)) {
    throw new MigstreamError('DECOMPRESS', lenAt, `Invalid LZ4 page length: ${clen} (1..${lz4Bound(ctx.pageSize)})`, { ramBlock: block.idstr });
  }
  if (clen > ctx.limits.maxCompressedLength) {
    throw new MigstreamError('LIMIT', lenAt, `LZ4 page of ${clen} bytes exceeds the limit of ${ctx.limits.maxCompressedLength}`, {
      ramBlock: block.idstr,
    });
  }
  const dataOffset = r.offset;
  const compressed = r.bytes(clen, 'LZ4 page data');
  let data = compressed;
  if (!ctx.defer) {
    try {
      // into the consumer's page (its RAM image) when it offers one; the RAM reader checks the offset after us
      const into = ctx.lz4Into;
      const target = into && rec.addr + ctx.pageSize <= block.length ? into.target(block, rec.addr, ctx.pageSize) : undefined;
      if (target) {
        into!.decode(compressed, target);
        data = target;
      } else data = ctx.lz4Page(compressed, ctx.pageSize);
    } catch (e) {
      throw new MigstreamError('DECOMPRESS', dataOffset, `LZ4 page failed to decompress: ${e instanceof Error ? e.message : String(e)}`, {
        ramBlock: block.idstr,
      });
    }
  }
  return { kind: 'lz4', block, data, dataOffset, compressedBytes: clen };
}
