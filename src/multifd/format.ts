import { MigstreamError } from '../codec/errors.js';

/**
 * QEMU 7.2's multifd wire format (migration/multifd.h, multifd.c): each extra
 * connection opens with a 64-byte MultiFDInit_t, then carries packets of a
 * 1,344-byte MultiFDPacket_t header followed by the page data.
 */
export const MULTIFD_MAGIC = 0x11223344;
export const MULTIFD_VERSION = 1;
export const INIT_BYTES = 64;
/** QEMU's MULTIFD_PACKET_SIZE: a packet holds at most 512 KiB of pages (128 of 4 KiB). */
export const MULTIFD_PACKET_BYTES = 512 * 1024;
/** magic, version, flags, pages_alloc, normal_pages, next_packet_size, packet_num, unused[4], ramblock[256]. */
export const PACKET_FIXED_BYTES = 4 * 6 + 8 + 32 + 256;
/** The destination's receive buffer for compressed data (zbuff_len = 2 × MULTIFD_PACKET_SIZE). */
export const MAX_COMPRESSED_PAYLOAD = 2 * MULTIFD_PACKET_BYTES;

export const FLAG_SYNC = 1;
export const FLAG_COMPRESSION_MASK = 7 << 1;

/**
 * brotli and zstd-dedup (src/multifd/page-dedup.ts): migstream's own forms between two relays (flag values
 * 3 << 1 and 5 << 1, unknown to QEMU).
 */
export type MultifdCompression = 'none' | 'zlib' | 'zstd' | 'brotli' | 'zstd-dedup';

export const COMPRESSION_FLAGS: Record<MultifdCompression, number> = { none: 0, zlib: 1 << 1, zstd: 2 << 1, brotli: 3 << 1, 'zstd-dedup': 5 << 1 };

export function compressionOfFlags(flags: number): MultifdCompression | undefined {
  const c = flags & FLAG_COMPRESSION_MASK;
  return (Object.keys(COMPRESSION_FLAGS) as MultifdCompression[]).find((k) => COMPRESSION_FLAGS[k] === c);
}

export interface MultifdInit {
  uuid: Uint8Array;
  id: number;
}

export interface PacketHeader {
  flags: number;
  pagesAlloc: number;
  normalPages: number;
  nextPacketSize: number;
  packetNum: bigint;
  ramblock: string;
  /** Byte offsets in the RAMBlock of the normal pages (only the first normalPages entries). */
  offsets: number[];
  /** Header bytes on the wire (fixed part + pages_alloc × 8). */
  headerBytes: number;
}

function be32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

function be64(b: Uint8Array, at: number): number {
  return be32(b, at) * 2 ** 32 + be32(b, at + 4);
}

/** Parses MultiFDInit_t; `at`: its absolute offset for errors (QEMU's wording). */
export function parseInit(b: Uint8Array, at = 0): MultifdInit {
  if (b.length < INIT_BYTES) throw new MigstreamError('TRUNCATED', at + b.length, `multifd handshake: expected ${INIT_BYTES} bytes`);
  const magic = be32(b, 0);
  if (magic !== MULTIFD_MAGIC)
    throw new MigstreamError('BAD_MAGIC', at, `multifd: received packet magic ${magic.toString(16)} expected ${MULTIFD_MAGIC.toString(16)}`);
  const version = be32(b, 4);
  if (version !== MULTIFD_VERSION) throw new MigstreamError('BAD_VERSION', at + 4, `multifd: received packet version ${version} expected ${MULTIFD_VERSION}`);
  return { uuid: b.slice(8, 24), id: b[24]! };
}

export function writeInit(init: MultifdInit): Uint8Array {
  const b = new Uint8Array(INIT_BYTES);
  const v = new DataView(b.buffer);
  v.setUint32(0, MULTIFD_MAGIC);
  v.setUint32(4, MULTIFD_VERSION);
  b.set(init.uuid.subarray(0, 16), 8);
  b[24] = init.id;
  return b;
}

/**
 * How many header bytes a packet takes: needs the first 16 bytes (pages_alloc).
 * Checks what QEMU checks before reading on (multifd_recv_unfill_packet).
 */
export function packetHeaderBytes(b: Uint8Array, at: number, pageSize: number): number {
  const magic = be32(b, 0);
  if (magic !== MULTIFD_MAGIC)
    throw new MigstreamError('BAD_MAGIC', at, `multifd: received packet magic ${magic.toString(16)} and expected magic ${MULTIFD_MAGIC.toString(16)}`);
  const version = be32(b, 4);
  if (version !== MULTIFD_VERSION)
    throw new MigstreamError('BAD_VERSION', at + 4, `multifd: received packet version ${version} and expected version ${MULTIFD_VERSION}`);
  const pagesAlloc = be32(b, 12);
  const max = MULTIFD_PACKET_BYTES / pageSize;
  if (pagesAlloc > max) throw new MigstreamError('BAD_RAM_RECORD', at + 12, `multifd: received packet with size ${pagesAlloc} and expected a size of ${max}`);
  return PACKET_FIXED_BYTES + pagesAlloc * 8;
}

/** Parses a complete header (`b` holds at least packetHeaderBytes). */
export function parsePacketHeader(b: Uint8Array, at: number, pageSize: number): PacketHeader {
  const headerBytes = packetHeaderBytes(b, at, pageSize);
  const flags = be32(b, 8);
  const pagesAlloc = be32(b, 12);
  const normalPages = be32(b, 16);
  if (normalPages > pagesAlloc)
    throw new MigstreamError('BAD_RAM_RECORD', at + 16, `multifd: received packet with ${normalPages} pages and expected maximum pages are ${pagesAlloc}`);
  const nextPacketSize = be32(b, 20);
  const packetNum = (BigInt(be32(b, 24)) << 32n) | BigInt(be32(b, 28));
  let end = 64;
  while (end < 64 + 255 && b[end] !== 0) end++;
  const ramblock = new TextDecoder().decode(b.subarray(64, end));
  const offsets: number[] = [];
  for (let i = 0; i < normalPages; i++) offsets.push(be64(b, PACKET_FIXED_BYTES + 8 * i));
  return { flags, pagesAlloc, normalPages, nextPacketSize, packetNum, ramblock, offsets, headerBytes };
}

export interface PacketFields {
  flags: number;
  pagesAlloc: number;
  offsets: readonly number[];
  nextPacketSize: number;
  packetNum: bigint;
  ramblock: string;
}

export function writePacketHeader(p: PacketFields): Uint8Array {
  const b = new Uint8Array(PACKET_FIXED_BYTES + p.pagesAlloc * 8);
  const v = new DataView(b.buffer);
  v.setUint32(0, MULTIFD_MAGIC);
  v.setUint32(4, MULTIFD_VERSION);
  v.setUint32(8, p.flags);
  v.setUint32(12, p.pagesAlloc);
  v.setUint32(16, p.offsets.length);
  v.setUint32(20, p.nextPacketSize);
  v.setBigUint64(24, p.packetNum);
  const name = new TextEncoder().encode(p.ramblock);
  if (name.length > 255) throw new RangeError(`RAMBlock name longer than 255 bytes: ${p.ramblock}`);
  b.set(name, 64);
  p.offsets.forEach((o, i) => v.setBigUint64(PACKET_FIXED_BYTES + 8 * i, BigInt(o)));
  return b;
}

/** Whether a connection's first bytes are a multifd handshake (by its magic: a wrong version is reported by parseInit). */
export function isMultifdHead(head: Uint8Array): boolean {
  return head.length >= 4 && be32(head, 0) === MULTIFD_MAGIC;
}
