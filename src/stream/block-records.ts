import type { ByteReader } from '../codec/byte-reader.js';
import { MigstreamError } from '../codec/errors.js';
import {
  BLK_CHUNK_SIZE,
  BLK_DEVICE_BLOCK,
  BLK_EOS,
  BLK_FLAG_MASK,
  BLK_PROGRESS,
  BLK_VAR_CHUNK,
  BLK_COMPRESSED,
  CHUNK_CODEC_LZ4,
  CHUNK_CODEC_ZLIB,
  BLK_ZERO_BLOCK,
  VAR_CHUNK_MAX,
} from './constants.js';
import type { BlockChunkEvent } from './events.js';
import { EMPTY, hex, type StreamDecoder } from './decoder.js';

// One block-migration record: be64 sector<<9|flags, then device name and 1 MiB unless ZERO_BLOCK.
export function readBlockRecord(this: StreamDecoder, r: ByteReader): void {
  const at = r.offset;
  const start = r.pos;
  const hi = r.be32('a block record header');
  const lo = r.be32('a block record header');
  const flags = lo & BLK_FLAG_MASK;
  const sector = hi * 0x800000 + (lo >>> 9);
  // As for RAM records: a JS number holds the sector exactly only below 2^53; QEMU ignores those bits
  // in EOS and prints a PROGRESS percent as (int)(header >> 9).
  const huge = hi > 0x1fffff;
  if (flags & BLK_DEVICE_BLOCK) {
    if (huge) throw new MigstreamError('BAD_BLOCK_RECORD', at, `block record header 0x${hex(hi, 8)}${hex(lo, 8)} beyond 2^53`);
    const device = this.name(r, 'a block device name', 'BAD_BLOCK_RECORD');
    const zero = (flags & BLK_ZERO_BLOCK) !== 0;
    let length = BLK_CHUNK_SIZE;
    if (flags & BLK_VAR_CHUNK) {
      if (!this.extensions.has('block-chunks')) {
        throw new MigstreamError(
          'BAD_BLOCK_RECORD',
          at,
          `Unknown block migration flags: 0x${flags.toString(16)} (a variable-size chunk, but no manifest declared the "block-chunks" extension)`,
        );
      }
      const lenAt = r.offset;
      length = r.be32('a block chunk length');
      if (length === 0 || length > VAR_CHUNK_MAX || length % 512 !== 0) {
        throw new MigstreamError('BAD_BLOCK_RECORD', lenAt, `expected a chunk length of 512..${VAR_CHUNK_MAX} bytes in whole sectors, found ${length}`, {
          device,
        });
      }
      if (!zero && length > this.limits.maxBlockChunk) {
        throw new MigstreamError('LIMIT', lenAt, `block chunk of ${length} bytes exceeds the limit of ${this.limits.maxBlockChunk}`, { device });
      }
    } else if (!zero && length > this.limits.maxBlockChunk) {
      throw new MigstreamError('LIMIT', at, `QEMU's ${length}-byte block chunk exceeds the limit of ${this.limits.maxBlockChunk}`, { device });
    }
    if (device.length === 0) throw new MigstreamError('BAD_BLOCK_RECORD', at + 8, 'Error unknown block device: empty name');
    if (sector * 512 + length > Number.MAX_SAFE_INTEGER) {
      // No disk is that large, and byte offsets past 2^53 cannot even be represented.
      throw new MigstreamError('BAD_BLOCK_RECORD', at, `block chunk at sector ${sector} ends beyond 2^53 bytes`, { device });
    }
    if (flags & BLK_COMPRESSED) {
      this.readCompressedChunk(r, at, flags, device, sector, length, start);
    } else {
      const dataOffset = r.offset;
      const data = zero ? EMPTY : r.bytes(length, length === BLK_CHUNK_SIZE ? 'a 1 MiB block chunk' : 'block chunk data');
      this.emit({ type: 'block-chunk', device, sector, length, zero, data, dataOffset, wireBytes: r.pos - start });
    }
  } else if (flags & BLK_PROGRESS) {
    // past 2^53, the low 32 bits of header >> 9: what QEMU's (int) cast prints, and a header transcode can write back
    this.emit({ type: 'block-progress', percent: huge ? (((hi & 0x1ff) << 23) | (lo >>> 9)) >>> 0 : sector });
  } else if (!(flags & BLK_EOS)) {
    throw new MigstreamError('BAD_BLOCK_RECORD', at, `Unknown block migration flags: 0x${flags.toString(16)}`);
  }
  if (flags & BLK_EOS) {
    this.emit({ type: 'block-eos' });
    this.state = 'footer';
  }
}

// A compressed variable-size chunk: after the length, a codec byte and be32 clen (1 <= clen < length).
export function readCompressedChunk(
  this: StreamDecoder,
  r: ByteReader,
  at: number,
  flags: number,
  device: string,
  sector: number,
  length: number,
  start: number,
): void {
  if (!this.extensions.has('chunk-compression')) {
    throw new MigstreamError(
      'BAD_BLOCK_RECORD',
      at,
      `Unknown block migration flags: 0x${flags.toString(16)} (a compressed chunk, but no manifest declared the "chunk-compression" extension)`,
      { device },
    );
  }
  if (!(flags & BLK_VAR_CHUNK) || flags & BLK_ZERO_BLOCK) {
    throw new MigstreamError(
      'BAD_BLOCK_RECORD',
      at,
      `Unknown block migration flags: 0x${flags.toString(16)} (a compressed chunk must be a variable-size, non-zero chunk)`,
      { device },
    );
  }
  const codecAt = r.offset;
  const id = r.u8('a chunk codec byte');
  const codec = id === CHUNK_CODEC_ZLIB ? 'zlib' : id === CHUNK_CODEC_LZ4 ? 'lz4' : undefined;
  if (!codec) {
    throw new MigstreamError('BAD_BLOCK_RECORD', codecAt, `expected a chunk codec (${CHUNK_CODEC_ZLIB} zlib, ${CHUNK_CODEC_LZ4} LZ4), found ${id}`, { device });
  }
  const clenAt = r.offset;
  const clen = r.be32('a compressed chunk length');
  if (clen === 0 || clen >= length) {
    throw new MigstreamError('DECOMPRESS', clenAt, `expected a compressed length of 1..${length - 1} bytes (less than the chunk), found ${clen}`, { device });
  }
  const dataOffset = r.offset;
  const compressed = r.bytes(clen, 'compressed chunk data');
  let data = compressed;
  if (!this.defer) {
    try {
      data = codec === 'lz4' ? this.lz4Page(compressed, length) : this.inflate(compressed, length);
    } catch (e) {
      throw new MigstreamError('DECOMPRESS', dataOffset, `${codec} chunk failed to decompress: ${e instanceof Error ? e.message : String(e)}`, { device });
    }
    if (data.length !== length) {
      throw new MigstreamError('DECOMPRESS', dataOffset, `${codec} chunk inflated to ${data.length} bytes, the record says ${length}`, { device });
    }
  }
  const ev: BlockChunkEvent = {
    type: 'block-chunk',
    device,
    sector,
    length,
    zero: false,
    data,
    codec,
    compressedBytes: clen,
    dataOffset,
    wireBytes: r.pos - start,
  };
  if (this.defer) ev.encoded = true;
  this.emit(ev);
}
