import { kernelsWasmBase64 } from './kernels-wasm.js';

/**
 * The LZ4 kernels of lz4.c (WebAssembly, built by `npm run build:kernels`): a
 * batch of pages per call. Compression without an acceleration writes
 * lz4_flex 0.9's bytes (the compressor lz4-wasm-nodejs bundles, named
 * 'lz4_flex' in the lz4-pages manifest) for pages below 64 KiB; with one,
 * liblz4's (the bytes of Lz4Compressor, 'migstream-lz4'). Decompression checks
 * every bound and reports what was wrong and where in the block, like lz4DecompressInto.
 */
interface Exports {
  memory: WebAssembly.Memory;
  lz4_compress_pages(input: number, pageSize: number, count: number, out: number, sizes: number): number;
  lz4_compress_fast_pages(input: number, pageSize: number, count: number, out: number, sizes: number, acceleration: number): number;
  lz4_decompress_pages(input: number, sizes: number, count: number, pageSize: number, out: number): number;
  lz4_error(): number;
  lz4_error_at(): number;
  lz4_error_bytes(): number;
  heap_base(): number;
}

let exports: Exports | undefined;
let base = 0;
let mem = new Uint8Array(0);
let words = new Uint32Array(0);

function kernels(): Exports {
  if (!exports) {
    const bytes = Uint8Array.from(atob(kernelsWasmBase64), (c) => c.charCodeAt(0));
    exports = new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports as unknown as Exports;
    base = (exports.heap_base() + 15) & ~15;
    mem = new Uint8Array(exports.memory.buffer);
    words = new Uint32Array(exports.memory.buffer);
  }
  return exports;
}

/** Makes the memory at least `end` bytes long; returns the current view of it (only this module grows it). */
function reserve(k: Exports, end: number): Uint8Array {
  if (end > mem.length) {
    k.memory.grow(Math.ceil((end - mem.length) / 65536));
    mem = new Uint8Array(k.memory.buffer);
    words = new Uint32Array(k.memory.buffer);
    pageView = undefined;
  }
  return mem;
}

/** A view of the one-page output area at `base` (the per-page decoder), kept while its size and the memory stay. */
let pageView: Uint8Array | undefined;

const align = (n: number) => (n + 15) & ~15;

/** LZ4_compressBound. */
function bound(size: number): number {
  return size + Math.floor(size / 255) + 16;
}

/** Largest page the lz4_flex compressor takes (lz4_flex switches to another table from 65535 bytes on). */
export const LZ4_KERNEL_MAX_PAGE = 65534;
/** Largest page liblz4's algorithm takes here (LZ4_64Klimit - 1, as Lz4Compressor). */
export const LZ4_KERNEL_MAX_FAST_PAGE = 65536 + 12 - 1;

/** Checks the page size and acceleration; undefined acceleration is lz4_flex. */
function checkCompress(pageSize: number, acceleration: number | undefined): void {
  const max = acceleration === undefined ? LZ4_KERNEL_MAX_PAGE : LZ4_KERNEL_MAX_FAST_PAGE;
  if (pageSize > max) throw new RangeError(`LZ4 kernel: pages of ${pageSize} bytes, at most ${max}`);
  if (acceleration !== undefined && !(Number.isInteger(acceleration) && acceleration >= 1 && acceleration <= 65537)) {
    throw new RangeError(`LZ4 acceleration must be an integer 1..65537, got ${acceleration}`);
  }
}

function compressCall(k: Exports, input: number, pageSize: number, count: number, out: number, sizes: number, acceleration: number | undefined): number {
  return acceleration === undefined
    ? k.lz4_compress_pages(input, pageSize, count, out, sizes)
    : k.lz4_compress_fast_pages(input, pageSize, count, out, sizes, acceleration);
}

/**
 * Compresses consecutive pages of `pages` (count × pageSize bytes, pageSize
 * at most LZ4_KERNEL_MAX_PAGE, or LZ4_KERNEL_MAX_FAST_PAGE with an
 * acceleration) in one call: the blocks back to back and each one's size.
 */
export function lz4KernelCompressPages(pages: Uint8Array, pageSize: number, acceleration?: number): { data: Uint8Array; sizes: Uint32Array } {
  checkCompress(pageSize, acceleration);
  const k = kernels();
  const count = pages.length / pageSize;
  const input = base;
  const sizesAt = align(input + pages.length + 16);
  const out = align(sizesAt + count * 4);
  const m = reserve(k, out + count * bound(pageSize) + 16);
  m.set(pages, input);
  const total = compressCall(k, input, pageSize, count, out, sizesAt, acceleration);
  return { data: m.slice(out, out + total), sizes: words.slice(sizesAt >>> 2, (sizesAt >>> 2) + count) };
}

/** Compresses one page into a fresh block (the per-page path allocates nothing else). */
export function lz4KernelCompress(page: Uint8Array, acceleration?: number): Uint8Array {
  return lz4KernelCompressView(page, acceleration).slice();
}

/** Compresses one page; the block is a view of wasm memory, valid until the next call into the kernels. */
export function lz4KernelCompressView(page: Uint8Array, acceleration?: number): Uint8Array {
  const n = page.length;
  checkCompress(n, acceleration);
  const k = kernels();
  const sizesAt = align(base + n + 16);
  const out = sizesAt + 16;
  const m = reserve(k, out + bound(n) + 16);
  m.set(page, base);
  const size = compressCall(k, base, n, 1, out, sizesAt, acceleration);
  return m.subarray(out, out + size);
}

/** Compresses consecutive pages into one block each (the PageCodecSet batch form). */
export function lz4KernelCompressBatch(pages: Uint8Array, pageSize: number): Uint8Array[] {
  const { data, sizes } = lz4KernelCompressPages(pages, pageSize);
  const blocks: Uint8Array[] = [];
  let at = 0;
  for (const s of sizes) {
    blocks.push(data.subarray(at, at + s));
    at += s;
  }
  return blocks;
}

function message(k: Exports, pageSize: number): string {
  const at = k.lz4_error_at();
  switch (k.lz4_error()) {
    case 1:
      return `LZ4 block ends before its last literals (at ${at})`;
    case 2:
      return 'LZ4 literal length runs past the block';
    case 3:
      return `LZ4 literals run past the block (at ${at})`;
    case 4:
      return `LZ4 literals run past the ${pageSize}-byte page (at ${at})`;
    case 5:
      return 'LZ4 match offset runs past the block';
    case 6:
      return `LZ4 match offset ${k.lz4_error_bytes()} points before the page (at ${at})`;
    case 7:
      return 'LZ4 match length runs past the block';
    case 8:
      return `LZ4 match runs past the ${pageSize}-byte page (at ${at})`;
    default:
      return `LZ4 block holds ${k.lz4_error_bytes()} bytes, expected a ${pageSize}-byte page`;
  }
}

/**
 * Decodes blocks (back to back in `data`, their sizes in `sizes`) into
 * consecutive pages of `out` in one call. Returns the first block that
 * failed and why, or undefined; pages before it are decoded.
 */
export function lz4KernelDecompressPages(
  data: Uint8Array,
  sizes: Uint32Array,
  pageSize: number,
  out: Uint8Array,
): { index: number; message: string } | undefined {
  const k = kernels();
  const count = sizes.length;
  const sizesAt = base;
  const input = align(sizesAt + count * 4);
  const output = align(input + data.length);
  const m = reserve(k, output + count * pageSize);
  words.set(sizes, sizesAt >>> 2);
  m.set(data, input);
  const failed = k.lz4_decompress_pages(input, sizesAt, count, pageSize, output);
  const done = failed < 0 ? count : failed;
  out.set(m.subarray(output, output + done * pageSize));
  return failed < 0 ? undefined : { index: failed, message: message(k, pageSize) };
}

/** The PageCodecSet batch form: `blocks` into consecutive pages of `out`. */
export function lz4KernelDecompressBatch(blocks: Uint8Array[], pageSize: number, out: Uint8Array): { index: number; message: string } | undefined {
  const k = kernels();
  const count = blocks.length;
  let total = 0;
  for (const b of blocks) total += b.length;
  const sizesAt = base;
  const input = align(sizesAt + count * 4);
  const output = align(input + total);
  const m = reserve(k, output + count * pageSize);
  let at = input;
  for (let i = 0; i < count; i++) {
    const b = blocks[i]!;
    words[(sizesAt >>> 2) + i] = b.length;
    m.set(b, at);
    at += b.length;
  }
  const failed = k.lz4_decompress_pages(input, sizesAt, count, pageSize, output);
  const done = failed < 0 ? count : failed;
  out.set(m.subarray(output, output + done * pageSize));
  return failed < 0 ? undefined : { index: failed, message: message(k, pageSize) };
}

/** Decodes one block into `out`, which it must fill exactly; throws a plain Error otherwise. */
export function lz4KernelDecompressInto(block: Uint8Array, out: Uint8Array): void {
  const k = kernels();
  const size = out.length;
  // the page first, at a fixed place, so its view is reused; then the block's size and the block
  const sizeAt = align(base + size);
  const input = sizeAt + 16;
  const m = reserve(k, input + block.length);
  words[sizeAt >>> 2] = block.length;
  m.set(block, input);
  if (k.lz4_decompress_pages(input, sizeAt, 1, size, base) >= 0) throw new Error(message(k, size));
  if (pageView?.length !== size) pageView = m.subarray(base, base + size);
  out.set(pageView);
}
