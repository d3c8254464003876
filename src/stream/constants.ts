/** Wire constants of QEMU 7.2. Each names where QEMU defines it. */

/** migration/savevm.c: QEMU_VM_FILE_MAGIC ("QEVM") and QEMU_VM_FILE_VERSION. */
export const VM_FILE_MAGIC = 0x5145564d;
export const VM_FILE_VERSION = 3;
export const VM_FILE_VERSION_COMPAT = 2;

/** migration/savevm.c: top-level record types. */
export const VM_EOF = 0x00;
export const VM_SECTION_START = 0x01;
export const VM_SECTION_PART = 0x02;
export const VM_SECTION_END = 0x03;
export const VM_SECTION_FULL = 0x04;
export const VM_SUBSECTION = 0x05;
export const VM_VMDESCRIPTION = 0x06;
export const VM_CONFIGURATION = 0x07;
export const VM_COMMAND = 0x08;
export const VM_SECTION_FOOTER = 0x7e;

/** migration/ram.c: RAM_SAVE_FLAG_*. */
export const RAM_FULL = 0x001;
export const RAM_ZERO = 0x002;
export const RAM_MEM_SIZE = 0x004;
export const RAM_PAGE = 0x008;
export const RAM_EOS = 0x010;
export const RAM_CONTINUE = 0x020;
export const RAM_XBZRLE = 0x040;
export const RAM_HOOK = 0x080;
export const RAM_COMPRESS_PAGE = 0x100;
export const RAM_MULTIFD_FLUSH = 0x200;

/** migration/ram.c: ENCODING_FLAG_XBZRLE, the byte before an XBZRLE length. */
export const ENCODING_FLAG_XBZRLE = 0x01;

/** migration/block.c: BLK_MIG_FLAG_* and the fixed chunk size. */
export const BLK_DEVICE_BLOCK = 0x01;
export const BLK_EOS = 0x02;
export const BLK_PROGRESS = 0x04;
export const BLK_ZERO_BLOCK = 0x08;
export const BLK_FLAG_MASK = 0x1ff;
export const BLK_SECTOR_BITS = 9;
export const BLK_CHUNK_SIZE = 1 << 20;
/** Ours, not QEMU's: a block record with an explicit be32 length after the device name (extension "block-chunks"). */
export const BLK_VAR_CHUNK = 0x10;
/** Ours: a variable-size chunk whose payload is compressed (extension "chunk-compression"); only with BLK_VAR_CHUNK. */
export const BLK_COMPRESSED = 0x20;
/** The codec byte of a compressed chunk. */
export const CHUNK_CODEC_ZLIB = 1;
export const CHUNK_CODEC_LZ4 = 2;
export const VAR_CHUNK_MIN = 4096;
export const VAR_CHUNK_MAX = 1 << 20;

/** migration/savevm.c: enum qemu_vm_cmd. */
export const COMMAND_NAMES = [
  'INVALID',
  'OPEN_RETURN_PATH',
  'PING',
  'POSTCOPY_ADVISE',
  'POSTCOPY_LISTEN',
  'POSTCOPY_RUN',
  'POSTCOPY_RAM_DISCARD',
  'PACKAGED',
  'ENABLE_COLO',
  'POSTCOPY_RESUME',
  'RECV_BITMAP',
] as const;

/** Fixed payload lengths from savevm.c's mig_cmd_args (-1: variable). */
export const COMMAND_LENGTHS = [-1, 0, 4, -1, 0, 0, -1, 4, 0, 0, -1] as const;

/** zlib's compressBound(4096) for QEMU's per-page deflate. */
export function compressBound(size: number): number {
  return size + (size >>> 12) + (size >>> 14) + (size >>> 25) + 13;
}

export const DEFAULT_PAGE_SIZE = 4096;

/**
 * migstream's own RAM record: one LZ4 block per page (docs/extension-format.md).
 * QEMU 7.2 defines RAM_SAVE_FLAG_* up to 0x200 (8.1 MULTIFD_FLUSH); 0x400 is
 * free below the smallest target page size QEMU builds for x86 (4 KiB), and
 * a stream using it must declare the "lz4-pages" extension in its manifest.
 */
export const RAM_LZ4_PAGE = 0x400;

/**
 * migstream's per-iteration digest record (extension "iteration-digests",
 * docs/extension-format.md): the other flag bit free below 4 KiB pages.
 */
export const RAM_DIGEST = 0x800;

/**
 * Command number of migstream's extension manifest (a QEMU_VM_COMMAND record
 * right after the configuration). QEMU 7.2's enum qemu_vm_cmd ends at
 * MIG_CMD_MAX = 11 and treats any other number as "Invalid command"; this one
 * ("ms") is far from the ones QEMU allocates in order.
 */
export const MIGSTREAM_MANIFEST_COMMAND = 0x6d73;
