import type { ByteReader } from '../codec/byte-reader.js';
import { MigstreamError } from '../codec/errors.js';
import {
  ENCODING_FLAG_XBZRLE,
  RAM_COMPRESS_PAGE,
  RAM_CONTINUE,
  RAM_EOS,
  RAM_HOOK,
  RAM_MEM_SIZE,
  RAM_MULTIFD_FLUSH,
  RAM_PAGE,
  RAM_XBZRLE,
  RAM_ZERO,
  compressBound,
} from './constants.js';
import type { PageKind, RamBlockInfo, SectionKind, StreamEvent } from './events.js';
import { xbzrleDecode } from '../xbzrle/decode.js';
import { EMPTY, hex } from './bytes.js';
import type { RamBlocks, RecordContext } from './extensions/extension.js';

// One RAM record: be64 offset|flags, then what the flags say. True at the section's EOS.
function readRamRecord(ram: RamRecordReader, ctx: RecordContext, r: ByteReader, sectionKind: SectionKind): boolean {
  const pageSize = ctx.pageSize;
  const at = r.offset;
  const start = r.pos;
  const hi = r.be32('a RAM record header');
  const lo = r.be32('a RAM record header');
  const flags = lo & (pageSize - 1);
  // Offset bits at or above 2^53 (no RAMBlock is that large; a JS number cannot hold them exactly): QEMU
  // ignores them in EOS and flush records and rejects a page there as an illegal offset, after its block.
  const huge = hi > 0x1fffff;
  const addr = hi * 0x100000000 + (lo - flags);
  const type = flags & ~RAM_CONTINUE;
  let kind: PageKind;
  let block: RamBlockInfo;
  let fill = 0;
  let data: Uint8Array = EMPTY;
  let dataOffset = 0;
  let compressedBytes: number | undefined;
  switch (type) {
    case RAM_ZERO:
      block = ram.blockRef(r, flags, at);
      fill = r.u8('the fill byte of a ZERO page');
      kind = 'zero';
      break;
    case RAM_PAGE:
      block = ram.blockRef(r, flags, at);
      dataOffset = r.offset;
      data = r.bytes(pageSize, 'the data of a PAGE record');
      kind = 'normal';
      break;
    case RAM_XBZRLE: {
      block = ram.blockRef(r, flags, at);
      const encAt = r.offset;
      const encoding = r.u8('the XBZRLE encoding flag');
      const elen = r.be16('the XBZRLE length');
      if (encoding !== ENCODING_FLAG_XBZRLE) {
        throw new MigstreamError('XBZRLE_DECODE', encAt, `Failed to load XBZRLE page - wrong compression! expected 0x01, found 0x${hex(encoding, 2)}`, {
          ramBlock: block.idstr,
        });
      }
      if (elen > pageSize) {
        throw new MigstreamError('XBZRLE_DECODE', encAt + 1, `Failed to load XBZRLE page - len overflow! ${elen} > ${pageSize}`, {
          ramBlock: block.idstr,
        });
      }
      if (elen > ctx.limits.maxXbzrleLength) {
        throw new MigstreamError('LIMIT', encAt + 1, `XBZRLE payload of ${elen} bytes exceeds the limit of ${ctx.limits.maxXbzrleLength}`, {
          ramBlock: block.idstr,
        });
      }
      dataOffset = r.offset;
      data = r.bytes(elen, 'the XBZRLE data');
      // Validate the grammar here so every consumer (even inspect) rejects what QEMU rejects.
      try {
        xbzrleDecode(data, ram.scratchPage(pageSize), dataOffset);
      } catch (e) {
        throw e instanceof MigstreamError ? e.withContext({ ramBlock: block.idstr }) : e;
      }
      kind = 'xbzrle';
      break;
    }
    case RAM_COMPRESS_PAGE: {
      block = ram.blockRef(r, flags, at);
      const lenAt = r.offset;
      const clen = r.be32('a compressed page length');
      if (clen > compressBound(pageSize)) {
        throw new MigstreamError('DECOMPRESS', lenAt, `Invalid compressed data length: ${clen} (at most ${compressBound(pageSize)})`, {
          ramBlock: block.idstr,
        });
      }
      if (clen > ctx.limits.maxCompressedLength) {
        throw new MigstreamError('LIMIT', lenAt, `compressed page of ${clen} bytes exceeds the limit of ${ctx.limits.maxCompressedLength}`, {
          ramBlock: block.idstr,
        });
      }
      dataOffset = r.offset;
      const compressed = r.bytes(clen, 'compressed page data');
      compressedBytes = clen;
      if (ctx.defer) data = compressed;
      else {
        try {
          data = ctx.inflate(compressed, pageSize);
        } catch (e) {
          throw new MigstreamError('DECOMPRESS', dataOffset, `decompress data failed: ${e instanceof Error ? e.message : String(e)}`, {
            ramBlock: block.idstr,
          });
        }
      }
      kind = 'compressed';
      break;
    }
    case RAM_MEM_SIZE:
      ram.readMemSize(r, huge ? Infinity : addr, at, start);
      return false;
    case RAM_EOS:
      ctx.emit({ type: 'iteration-end', index: ram.iteration++, kind: sectionKind, offset: at });
      return true;
    case RAM_MULTIFD_FLUSH:
      ctx.emit({ type: 'ram-flush' });
      return false;
    case RAM_HOOK:
      throw new MigstreamError('UNSUPPORTED', at, 'RAM_SAVE_FLAG_HOOK: RDMA streams are not supported');
    default: {
      // a record type of a declared extension (src/stream/extensions)
      const ext = ctx.extensions.ram(type);
      if (ext) {
        const page = ext.readRam!(ctx, ram, r, { at, start, flags, addr });
        if (!page) return false;
        ({ kind, block, data, dataOffset, compressedBytes } = page);
        break;
      }
      if (flags & (RAM_ZERO | RAM_PAGE | RAM_XBZRLE | RAM_COMPRESS_PAGE)) {
        // QEMU reads the block and checks the offset for any flags with a page bit, then judges the combination
        block = ram.blockRef(r, flags, at);
        checkOffset(block, addr, pageSize, huge, hi, lo - flags, at);
      }
      throw new MigstreamError('BAD_RAM_RECORD', at, `Unknown combination of migration flags: 0x${flags.toString(16)}`);
    }
  }
  checkOffset(block, addr, pageSize, huge, hi, lo - flags, at);
  ram.lastBlock = block;
  const ev: StreamEvent = { type: 'page', kind, block, offset: addr, pageSize, fill, data, dataOffset, wireBytes: r.pos - start };
  if (compressedBytes !== undefined) {
    ev.compressedBytes = compressedBytes;
    if (ctx.defer) ev.encoded = true;
  }
  ctx.emit(ev);
  return false;
}

function checkOffset(block: RamBlockInfo, addr: number, pageSize: number, huge: boolean, hi: number, loAddr: number, at: number): void {
  if (huge || addr + pageSize > block.length) {
    const shown = huge ? `${hi.toString(16)}${hex(loAddr, 8)}` : addr.toString(16);
    throw new MigstreamError('BAD_OFFSET', at, `Illegal RAM offset 0x${shown}: block is 0x${block.length.toString(16)} bytes`, { ramBlock: block.idstr });
  }
}

/**
 * The RAM section's reader and its state: the RAMBlocks MEM_SIZE declared,
 * the last one named (CONTINUE), the iteration count. Records of declared
 * extensions are read by their own modules (src/stream/extensions).
 */
export class RamRecordReader implements RamBlocks {
  blocks = new Map<string, RamBlockInfo>();
  lastBlock: RamBlockInfo | undefined;
  /** RAM sections read so far: the index of the next iteration-end. */
  iteration = 0;
  /** The configuration's x-ignore-shared capability: MEM_SIZE carries each block's address. */
  ignoreShared = false;
  /** POSTCOPY_ADVISE said the host page size differs (hugepage-backed RAMBlocks). */
  postcopyHugePages = false;
  private scratch: Uint8Array = EMPTY;
  private readonly ctx: RecordContext;

  constructor(ctx: RecordContext) {
    this.ctx = ctx;
  }

  /** One RAM record; true at the section's EOS. */
  read(r: ByteReader, sectionKind: SectionKind): boolean {
    return readRamRecord(this, this.ctx, r, sectionKind);
  }

  /** The page buffer XBZRLE payloads are checked against. */
  scratchPage(pageSize: number): Uint8Array {
    if (this.scratch.length !== pageSize) this.scratch = new Uint8Array(pageSize);
    return this.scratch;
  }

  // Block reference: the idstr unless CONTINUE says "same block as the previous page".
  blockRef(r: ByteReader, flags: number, at: number): RamBlockInfo {
    if (flags & RAM_CONTINUE) {
      if (!this.lastBlock) throw new MigstreamError('BAD_RAM_RECORD', at, 'Ack, bad migration stream! (CONTINUE with no previous RAMBlock)');
      return this.lastBlock;
    }
    const idAt = r.offset;
    const idstr = this.ctx.name(r, 'a RAMBlock idstr', 'UNKNOWN_RAMBLOCK');
    const block = this.blocks.get(idstr);
    if (!block) throw new MigstreamError('UNKNOWN_RAMBLOCK', idAt, `Can't find block ${idstr}`);
    return block;
  }

  // MEM_SIZE: total | 0x04, then str8 idstr + be64 used_length [+ page size] [+ mr_addr] until the lengths add up.
  /** @internal */ readMemSize(r: ByteReader, total: number, at: number, start: number): void {
    if (total > this.ctx.limits.maxTotalRam || total === Infinity) {
      throw new MigstreamError(
        'LIMIT',
        at,
        `MEM_SIZE declares ${total === Infinity ? '2^53 or more' : total} bytes of RAM, above the limit of ${this.ctx.limits.maxTotalRam}`,
      );
    }
    if (this.postcopyHugePages) {
      throw new MigstreamError('UNSUPPORTED', at, 'MEM_SIZE with postcopy hugepage-backed RAMBlocks is not supported');
    }
    const blocks: RamBlockInfo[] = [];
    const seen = new Set<string>();
    let left = total;
    while (left > 0) {
      const idAt = r.offset;
      const idstr = this.ctx.name(r, 'a RAMBlock idstr in MEM_SIZE', 'BAD_RAM_RECORD');
      const length = r.be64('a RAMBlock length');
      const block: RamBlockInfo = { idstr, length };
      if (this.ignoreShared) block.mrAddr = r.be64('a RAMBlock address (x-ignore-shared)');
      if (idstr.length === 0) throw new MigstreamError('BAD_RAM_RECORD', idAt, 'expected a RAMBlock idstr in MEM_SIZE, found an empty one');
      if (seen.has(idstr)) throw new MigstreamError('BAD_RAM_RECORD', idAt, `RAMBlock "${idstr}" listed twice in MEM_SIZE`);
      if (length > left) {
        throw new MigstreamError('BAD_RAM_RECORD', idAt, `RAMBlock "${idstr}" length ${length} exceeds the ${left} bytes MEM_SIZE has left`);
      }
      if (blocks.length >= this.ctx.limits.maxRamBlocks) {
        throw new MigstreamError('LIMIT', idAt, `more than ${this.ctx.limits.maxRamBlocks} RAMBlocks in MEM_SIZE`);
      }
      if (length === 0) throw new MigstreamError('BAD_RAM_RECORD', idAt, `RAMBlock "${idstr}" has length 0`);
      seen.add(idstr);
      blocks.push(block);
      left -= length;
    }
    this.blocks = new Map(blocks.map((b) => [b.idstr, b]));
    this.lastBlock = undefined;
    this.ctx.emit({ type: 'ram-blocks', blocks, wireBytes: r.pos - start, offset: at });
  }
}
