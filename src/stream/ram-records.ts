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
  RAM_LZ4_PAGE,
  RAM_DIGEST,
} from './constants.js';
import { lz4Bound } from '../codec/lz4-block.js';
import type { PageKind, RamBlockInfo, StreamEvent } from './events.js';
import { xbzrleDecode } from '../xbzrle/decode.js';
import { hex, ZERO_DATA, type StreamDecoder } from './decoder.js';

// One RAM record: be64 offset|flags, then what the flags say.
export function readRamRecord(this: StreamDecoder, r: ByteReader): void {
  const at = r.offset;
  const start = r.pos;
  const hi = r.be32('a RAM record header');
  const lo = r.be32('a RAM record header');
  const flags = lo & this.flagMask;
  // Offset bits at or above 2^53 (no RAMBlock is that large; a JS number cannot hold them exactly): QEMU
  // ignores them in EOS and flush records and rejects a page there as an illegal offset, after its block.
  const huge = hi > 0x1fffff;
  const addr = hi * 0x100000000 + (lo - flags);
  const type = flags & ~RAM_CONTINUE;
  let kind: PageKind;
  let block: RamBlockInfo;
  let fill = 0;
  let data: Uint8Array = ZERO_DATA;
  let dataOffset = 0;
  let compressedBytes: number | undefined;
  switch (type) {
    case RAM_ZERO:
      block = this.blockRef(r, flags, at);
      fill = r.u8('the fill byte of a ZERO page');
      kind = 'zero';
      break;
    case RAM_PAGE:
      block = this.blockRef(r, flags, at);
      dataOffset = r.offset;
      data = r.bytes(this.pageSize, 'the data of a PAGE record');
      kind = 'normal';
      break;
    case RAM_XBZRLE: {
      block = this.blockRef(r, flags, at);
      const encAt = r.offset;
      const encoding = r.u8('the XBZRLE encoding flag');
      const elen = r.be16('the XBZRLE length');
      if (encoding !== ENCODING_FLAG_XBZRLE) {
        throw new MigstreamError('XBZRLE_DECODE', encAt, `Failed to load XBZRLE page - wrong compression! expected 0x01, found 0x${hex(encoding, 2)}`, {
          ramBlock: block.idstr,
        });
      }
      if (elen > this.pageSize) {
        throw new MigstreamError('XBZRLE_DECODE', encAt + 1, `Failed to load XBZRLE page - len overflow! ${elen} > ${this.pageSize}`, {
          ramBlock: block.idstr,
        });
      }
      if (elen > this.limits.maxXbzrleLength) {
        throw new MigstreamError('LIMIT', encAt + 1, `XBZRLE payload of ${elen} bytes exceeds the limit of ${this.limits.maxXbzrleLength}`, {
          ramBlock: block.idstr,
        });
      }
      dataOffset = r.offset;
      data = r.bytes(elen, 'the XBZRLE data');
      // Validate the grammar here so every consumer (even inspect) rejects what QEMU rejects.
      if (this.scratch.length !== this.pageSize) this.scratch = new Uint8Array(this.pageSize);
      try {
        xbzrleDecode(data, this.scratch, dataOffset);
      } catch (e) {
        throw e instanceof MigstreamError ? e.withContext({ ramBlock: block.idstr }) : e;
      }
      kind = 'xbzrle';
      break;
    }
    case RAM_COMPRESS_PAGE: {
      block = this.blockRef(r, flags, at);
      const lenAt = r.offset;
      const clen = r.be32('a compressed page length');
      if (clen > compressBound(this.pageSize)) {
        throw new MigstreamError('DECOMPRESS', lenAt, `Invalid compressed data length: ${clen} (at most ${compressBound(this.pageSize)})`, {
          ramBlock: block.idstr,
        });
      }
      if (clen > this.limits.maxCompressedLength) {
        throw new MigstreamError('LIMIT', lenAt, `compressed page of ${clen} bytes exceeds the limit of ${this.limits.maxCompressedLength}`, {
          ramBlock: block.idstr,
        });
      }
      dataOffset = r.offset;
      const compressed = r.bytes(clen, 'compressed page data');
      compressedBytes = clen;
      if (this.defer) data = compressed;
      else {
        try {
          data = this.inflate(compressed, this.pageSize);
        } catch (e) {
          throw new MigstreamError('DECOMPRESS', dataOffset, `decompress data failed: ${e instanceof Error ? e.message : String(e)}`, {
            ramBlock: block.idstr,
          });
        }
      }
      kind = 'compressed';
      break;
    }
    // migstream's LZ4 page (declared by the manifest): be32 length, one LZ4 block holding exactly a page.
    case this.lz4 ? RAM_LZ4_PAGE : -1: {
      block = this.blockRef(r, flags, at);
      const lenAt = r.offset;
      const clen = r.be32('an LZ4 page length');
      if (clen === 0 || clen > lz4Bound(this.pageSize)) {
        throw new MigstreamError('DECOMPRESS', lenAt, `Invalid LZ4 page length: ${clen} (1..${lz4Bound(this.pageSize)})`, { ramBlock: block.idstr });
      }
      if (clen > this.limits.maxCompressedLength) {
        throw new MigstreamError('LIMIT', lenAt, `LZ4 page of ${clen} bytes exceeds the limit of ${this.limits.maxCompressedLength}`, {
          ramBlock: block.idstr,
        });
      }
      dataOffset = r.offset;
      const compressed = r.bytes(clen, 'LZ4 page data');
      compressedBytes = clen;
      if (this.defer) data = compressed;
      else {
        try {
          data = this.lz4Page(compressed, this.pageSize);
        } catch (e) {
          throw new MigstreamError('DECOMPRESS', dataOffset, `LZ4 page failed to decompress: ${e instanceof Error ? e.message : String(e)}`, {
            ramBlock: block.idstr,
          });
        }
      }
      kind = 'lz4';
      break;
    }
    // migstream's digest record (declared by the manifest): block reference, be64 count, u8 length, digest.
    case this.digestLength > 0 ? RAM_DIGEST : -1: {
      if (addr !== 0) throw new MigstreamError('BAD_RAM_RECORD', at, `digest record with address bits 0x${addr.toString(16)}: expected 0`);
      const digestBlock = this.blockRef(r, flags, at);
      const count = r.be64('a digest record count');
      const lenAt = r.offset;
      const len = r.u8('a digest length');
      if (len !== this.digestLength) {
        throw new MigstreamError('BAD_RAM_RECORD', lenAt, `digest of ${len} bytes: ${this.digestAlgorithm} digests have ${this.digestLength}`, {
          ramBlock: digestBlock.idstr,
        });
      }
      const digest = r.bytes(len, 'the digest').slice();
      this.lastBlock = digestBlock;
      this.emit({
        type: 'ram-digest',
        block: digestBlock,
        iteration: this.ramSections,
        count,
        algorithm: this.digestAlgorithm,
        digest,
        offset: at,
        wireBytes: r.pos - start,
      });
      return;
    }
    case RAM_MEM_SIZE:
      this.readMemSize(r, huge ? Infinity : addr, at, start);
      return;
    case RAM_EOS:
      this.emit({ type: 'iteration-end', index: this.ramSections++, kind: this.current!.kind, offset: at });
      this.state = 'footer';
      return;
    case RAM_MULTIFD_FLUSH:
      this.emit({ type: 'ram-flush' });
      return;
    case RAM_HOOK:
      throw new MigstreamError('UNSUPPORTED', at, 'RAM_SAVE_FLAG_HOOK: RDMA streams are not supported');
    default:
      if (flags & (RAM_ZERO | RAM_PAGE | RAM_XBZRLE | RAM_COMPRESS_PAGE)) {
        // QEMU reads the block and checks the offset for any flags with a page bit, then judges the combination
        block = this.blockRef(r, flags, at);
        checkOffset(block, addr, this.pageSize, huge, hi, lo - flags, at);
      }
      throw new MigstreamError('BAD_RAM_RECORD', at, `Unknown combination of migration flags: 0x${flags.toString(16)}`);
  }
  checkOffset(block, addr, this.pageSize, huge, hi, lo - flags, at);
  this.lastBlock = block;
  const ev: StreamEvent = { type: 'page', kind, block, offset: addr, pageSize: this.pageSize, fill, data, dataOffset, wireBytes: r.pos - start };
  if (compressedBytes !== undefined) {
    ev.compressedBytes = compressedBytes;
    if (this.defer) ev.encoded = true;
  }
  this.emit(ev);
}

function checkOffset(block: RamBlockInfo, addr: number, pageSize: number, huge: boolean, hi: number, loAddr: number, at: number): void {
  if (huge || addr + pageSize > block.length) {
    const shown = huge ? `${hi.toString(16)}${hex(loAddr, 8)}` : addr.toString(16);
    throw new MigstreamError('BAD_OFFSET', at, `Illegal RAM offset 0x${shown}: block is 0x${block.length.toString(16)} bytes`, { ramBlock: block.idstr });
  }
}

// Block reference: the idstr unless CONTINUE says "same block as the previous page".
export function blockRef(this: StreamDecoder, r: ByteReader, flags: number, at: number): RamBlockInfo {
  if (flags & RAM_CONTINUE) {
    if (!this.lastBlock) throw new MigstreamError('BAD_RAM_RECORD', at, 'Ack, bad migration stream! (CONTINUE with no previous RAMBlock)');
    return this.lastBlock;
  }
  const idAt = r.offset;
  const idstr = this.name(r, 'a RAMBlock idstr', 'UNKNOWN_RAMBLOCK');
  const block = this.blocks.get(idstr);
  if (!block) throw new MigstreamError('UNKNOWN_RAMBLOCK', idAt, `Can't find block ${idstr}`);
  return block;
}

// MEM_SIZE: total | 0x04, then str8 idstr + be64 used_length [+ page size] [+ mr_addr] until the lengths add up.
export function readMemSize(this: StreamDecoder, r: ByteReader, total: number, at: number, start: number): void {
  if (total > this.limits.maxTotalRam || total === Infinity) {
    throw new MigstreamError(
      'LIMIT',
      at,
      `MEM_SIZE declares ${total === Infinity ? '2^53 or more' : total} bytes of RAM, above the limit of ${this.limits.maxTotalRam}`,
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
    const idstr = this.name(r, 'a RAMBlock idstr in MEM_SIZE', 'BAD_RAM_RECORD');
    const length = r.be64('a RAMBlock length');
    const block: RamBlockInfo = { idstr, length };
    if (this.ignoreShared) block.mrAddr = r.be64('a RAMBlock address (x-ignore-shared)');
    if (idstr.length === 0) throw new MigstreamError('BAD_RAM_RECORD', idAt, 'expected a RAMBlock idstr in MEM_SIZE, found an empty one');
    if (seen.has(idstr)) throw new MigstreamError('BAD_RAM_RECORD', idAt, `RAMBlock "${idstr}" listed twice in MEM_SIZE`);
    if (length > left) {
      throw new MigstreamError('BAD_RAM_RECORD', idAt, `RAMBlock "${idstr}" length ${length} exceeds the ${left} bytes MEM_SIZE has left`);
    }
    if (blocks.length >= this.limits.maxRamBlocks) {
      throw new MigstreamError('LIMIT', idAt, `more than ${this.limits.maxRamBlocks} RAMBlocks in MEM_SIZE`);
    }
    if (length === 0) throw new MigstreamError('BAD_RAM_RECORD', idAt, `RAMBlock "${idstr}" has length 0`);
    seen.add(idstr);
    blocks.push(block);
    left -= length;
  }
  this.blocks = new Map(blocks.map((b) => [b.idstr, b]));
  this.lastBlock = undefined;
  this.emit({ type: 'ram-blocks', blocks, wireBytes: r.pos - start, offset: at });
}
