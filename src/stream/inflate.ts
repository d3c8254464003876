import { nodeZlib } from './zlib-node.js';

/**
 * Inflates one QEMU compressed page (a complete zlib stream, RFC 1950) the way
 * QEMU's qemu_uncompress_data does: the stream must end within `pageSize`
 * output bytes. Returns the inflated bytes (QEMU accepts fewer than a page
 * and leaves the rest untouched). Throws a plain Error (node:zlib's RangeError
 * for an oversized page included); the decoder adds the offset.
 */
export type PageInflater = (src: Uint8Array, pageSize: number) => Uint8Array;

export const inflatePageNode: PageInflater = (src, pageSize) => nodeZlib.inflate(src, pageSize);
