import lz4 from 'lz4-wasm-nodejs';

/**
 * lz4-wasm-nodejs (lz4_flex compiled to WebAssembly). Its public functions
 * copy every input into wasm memory and every result out, with the size
 * prefixed in 4 little-endian bytes; the batch forms below call the same
 * exported wasm functions directly with one input copy per batch, which
 * bench/compress.bench.mjs measures against the per-call API.
 */
interface Lz4Wasm {
  memory: WebAssembly.Memory;
  compress(retptr: number, ptr: number, len: number): void;
  decompress(retptr: number, ptr: number, len: number): void;
  __wbindgen_add_to_stack_pointer(delta: number): number;
  __wbindgen_malloc(size: number): number;
  __wbindgen_free(ptr: number, size: number): void;
}

const api = lz4 as unknown as { compress(b: Uint8Array): Uint8Array; decompress(b: Uint8Array): Uint8Array; __wasm: Lz4Wasm };
const wasm = api.__wasm;

/** The package's own functions, for the benchmark's per-call comparison. */
export const lz4WasmApi = { compress: api.compress, decompress: api.decompress };

/** lz4_flex's block compressor (no acceleration knob: it behaves like liblz4 at acceleration 1). */
export function lz4WasmCompress(page: Uint8Array): Uint8Array {
  return lz4WasmCompressBatch(page, page.length)[0]!;
}

/** Decodes one block into a fresh page; throws a plain Error when it is not exactly one page. */
export function lz4WasmDecompress(block: Uint8Array, pageSize: number): Uint8Array {
  const out = new Uint8Array(pageSize);
  const error = lz4WasmDecompressBatch([block], pageSize, out);
  if (error) throw new Error(error.message);
  return out;
}

/**
 * Decodes `blocks` into consecutive pages of `out` (blocks.length × pageSize
 * bytes), writing each input straight into wasm memory (the exported
 * function takes ownership of its input, so each block needs its own
 * allocation: the API allows no true batching). Returns the index of the
 * first block that failed with its message, or undefined.
 */
export function lz4WasmDecompressBatch(blocks: Uint8Array[], pageSize: number, out: Uint8Array): { index: number; message: string } | undefined {
  const retptr = wasm.__wbindgen_add_to_stack_pointer(-16);
  try {
    for (let i = 0; i < blocks.length; i++) {
      const b = blocks[i]!;
      const len = b.length + 4;
      const input = wasm.__wbindgen_malloc(len);
      const mem = new Uint8Array(wasm.memory.buffer);
      mem[input] = pageSize & 0xff;
      mem[input + 1] = (pageSize >>> 8) & 0xff;
      mem[input + 2] = (pageSize >>> 16) & 0xff;
      mem[input + 3] = pageSize >>> 24;
      mem.set(b, input + 4);
      wasm.decompress(retptr, input, len);
      const ret = new Int32Array(wasm.memory.buffer, retptr, 4);
      const ptr = ret[0]!;
      const size = ret[1]!;
      if (ret[3]) return { index: i, message: 'malformed LZ4 block' };
      if (size !== pageSize) {
        wasm.__wbindgen_free(ptr, size);
        return { index: i, message: `LZ4 block holds ${size} bytes, expected a ${pageSize}-byte page` };
      }
      out.set(new Uint8Array(wasm.memory.buffer, ptr, size), i * pageSize);
      wasm.__wbindgen_free(ptr, size);
    }
    return undefined;
  } finally {
    wasm.__wbindgen_add_to_stack_pointer(16);
  }
}

/** Compresses consecutive pages of `pages` the same way (one wasm allocation per page, no JS glue); one block per page. */
export function lz4WasmCompressBatch(pages: Uint8Array, pageSize: number): Uint8Array[] {
  const count = pages.length / pageSize;
  const retptr = wasm.__wbindgen_add_to_stack_pointer(-16);
  const blocks: Uint8Array[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const input = wasm.__wbindgen_malloc(pageSize);
      new Uint8Array(wasm.memory.buffer).set(pages.subarray(i * pageSize, (i + 1) * pageSize), input);
      wasm.compress(retptr, input, pageSize);
      const ret = new Int32Array(wasm.memory.buffer, retptr, 2);
      const ptr = ret[0]!;
      const size = ret[1]!;
      blocks.push(new Uint8Array(wasm.memory.buffer, ptr + 4, size - 4).slice());
      wasm.__wbindgen_free(ptr, size);
    }
    return blocks;
  } finally {
    wasm.__wbindgen_add_to_stack_pointer(16);
  }
}
