import { describe, expect, it } from 'vitest';
import '../src/node/install.js';
import { Lz4Compressor } from '../src/codec/lz4-block.js';
import { loadFixture } from '../fixtures/qemu/lib.mjs';
import { isZeroPage } from '../src/codec/zero.js';
import { codecSet } from '../src/stream/codec-table.js';
import { lz4WasmCompress } from '../src/stream/lz4-wasm.js';
import { runTask } from '../src/stream/pool/tasks.js';
import { resolveSpec } from '../src/stream/page-codecs.js';
import { sameBytes } from './support/build.js';

// The codec table's contiguous LZ4 batch form (lz4CompressPages / lz4DecompressPages): the one route the pool's tasks take.
const node = codecSet('node');

function guestPages(count: number, size = 4096): Uint8Array {
  const ram = new Uint8Array(loadFixture('plain').ram);
  const out = new Uint8Array(count * size);
  let n = 0;
  for (let o = 0; o + size <= ram.length && n < count; o += size) {
    const p = ram.subarray(o, o + size);
    if (!isZeroPage(p)) out.set(p, n++ * size);
  }
  expect(n).toBe(count);
  return out;
}

function split(data: Uint8Array, sizes: Uint32Array): Uint8Array[] {
  const blocks: Uint8Array[] = [];
  let at = 0;
  for (const s of sizes) {
    blocks.push(data.subarray(at, at + s));
    at += s;
  }
  expect(at).toBe(data.length);
  return blocks;
}

describe('the node codec set, LZ4 batch form', () => {
  it.each([
    ['lz4_flex (no acceleration), 4 KiB pages', 4096, undefined],
    ['liblz4 at acceleration 3, 4 KiB pages', 4096, 3],
    ['lz4_flex past the kernel limit (128 KiB items)', 131072, undefined],
  ])('%s: the per-page bytes, back to back; decoded back exactly', (_, size, acceleration) => {
    const count = size === 4096 ? 64 : 2;
    const pages = guestPages((count * size) / 4096).subarray(0, count * size);
    const { data, sizes } = node.lz4CompressPages!(pages, size, acceleration);
    expect(sizes.length).toBe(count);
    split(data, sizes).forEach((block, i) => {
      const page = pages.subarray(i * size, (i + 1) * size);
      const want = acceleration === undefined ? lz4WasmCompress(page) : new Lz4Compressor(acceleration).compress(page);
      expect(sameBytes(block, want), `item ${i}`).toBe(true);
      expect(sameBytes(block, acceleration === undefined ? node.lz4Compress(page) : node.lz4CompressFastView!(page, acceleration))).toBe(true);
    });
    if (size === 4096) {
      const out = new Uint8Array(pages.length);
      expect(node.lz4DecompressPages!(data, sizes, size, out)).toBeUndefined();
      expect(sameBytes(out, pages)).toBe(true);
    }
  });

  it('a pool task compresses through it, and decodes through it with the failing block named', () => {
    const pages = guestPages(16);
    const spec = resolveSpec({ codec: 'lz4', impl: 'node' });
    const r = runTask({ op: 'compress', spec, pageSize: 4096, pages: pages.slice() });
    if (r.op !== 'compress') throw new Error('expected a compress result');
    expect(sameBytes(r.data, node.lz4CompressPages!(pages, 4096).data)).toBe(true);
    const bad = r.data.slice();
    const third = r.sizes[0]! + r.sizes[1]!;
    bad.fill(0xff, third, third + r.sizes[2]!);
    const d = runTask({ op: 'decompress', codec: 'lz4', impl: 'node', pageSize: 4096, sizes: r.sizes, data: bad });
    if (d.op !== 'decompress') throw new Error('expected a decompress result');
    expect(d.error?.index).toBe(2);
    expect(sameBytes(d.pages.subarray(0, 2 * 4096), pages.subarray(0, 2 * 4096))).toBe(true);
  });
});
