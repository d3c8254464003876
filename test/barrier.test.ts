import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Lz4Compressor } from '../src/codec/lz4-block.js';
import { nodeZlib } from '../src/stream/zlib-node.js';
import { decodeAll, StreamDecoder } from '../src/stream/decoder.js';
import { StreamEncoder } from '../src/stream/encoder.js';
import type { StreamEvent } from '../src/stream/events.js';
import { encodeManifest } from '../src/stream/manifest.js';
import { lz4PagesEntry } from '../src/stream/extensions/registry.js';
import { DecompressQueue, type DecompressQueueOptions } from '../src/stream/pool/decompress-queue.js';
import { runTask } from '../src/stream/pool/tasks.js';
import { InlinePool } from '../src/stream/pool/thread-pool.js';
import { RamImage } from '../src/stream/ram-image.js';
import { concatChunks } from '../src/stream/transcode.js';
import { xbzrleEncode } from '../src/xbzrle/encode.js';
import { deviceTail, RAM } from './support/build.js';

/** mulberry32: small, seedable, good enough for schedules. */
function rng(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (x + 0x6d2b79f5) >>> 0;
    let t = Math.imul(x ^ (x >>> 15), 1 | x);
    t ^= t + Math.imul(t ^ (t >>> 7), 61 | t);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

const PAGES = 8;
const content = (iteration: number, p: number) => new Uint8Array(4096).map((_, j) => (iteration * 31 + p * 7 + (j >> 3)) & 0xff);

/**
 * Six RAM iterations over 8 pages, where stale data can win a race:
 *  - a page compressed in one iteration and sent again as PAGE, ZERO or
 *    compressed in the next (an old copy landing late overwrites the new);
 *  - within one section, a page sent compressed and then as an XBZRLE
 *    delta against that compressed content (the delta needs it applied);
 *  - pages the last iterations leave alone, so a stale copy stays visible.
 * Records mix zlib (QEMU's) and LZ4 (ours) pages.
 */
function raceStream(): Uint8Array {
  const parts: Uint8Array[] = [];
  const e = new StreamEncoder((c) => parts.push(c), { chunkSize: 1 << 30 });
  const lz4 = new Lz4Compressor(1);
  e.header()
    .configuration('pc-i440fx-7.2')
    .manifest(encodeManifest([lz4PagesEntry({ pageSize: 4096, acceleration: 1, compressor: 'migstream-lz4' })]));
  e.sectionStart(RAM)
    .memSize([{ idstr: 'pc.ram', length: PAGES * 4096 }])
    .ramEos()
    .footer(RAM.sectionId);
  const current: Uint8Array[] = [];
  const kinds = ['zlib', 'lz4', 'page', 'zero', 'zlib', 'lz4'] as const;
  for (let it = 1; it <= 6; it++) {
    if (it === 6) e.sectionEnd(RAM.sectionId);
    else e.sectionPart(RAM.sectionId);
    const touched = it >= 5 ? [0, 2, 4] : [...Array(PAGES).keys()];
    for (const p of touched) {
      const kind = kinds[(it + p) % kinds.length]!;
      const data = kind === 'zero' ? new Uint8Array(4096) : content(it, p);
      if (kind === 'zlib') e.compressedPage('zlib', 'pc.ram', p * 4096, data, nodeZlib.deflate(data, 1));
      else if (kind === 'lz4') e.compressedPage('lz4', 'pc.ram', p * 4096, data, lz4.compress(data));
      else if (kind === 'zero') e.zeroPage('pc.ram', p * 4096);
      else e.page('pc.ram', p * 4096, data);
      current[p] = data;
    }
    // within the section: page 1 compressed, then an XBZRLE delta against that content
    const before = content(it + 100, 1);
    const after = Uint8Array.from(before);
    for (let j = 0; j < 4096; j += 97) after[j]! ^= 0x5a;
    e.compressedPage('zlib', 'pc.ram', 4096, before, nodeZlib.deflate(before, 1));
    const delta = new Uint8Array(4096);
    const n = xbzrleEncode(before, after, delta);
    e.xbzrlePage('pc.ram', 4096, delta.subarray(0, n));
    // and page 3 compressed twice in one section: the second copy must win
    const first = content(it + 200, 3);
    const second = content(it + 300, 3);
    e.compressedPage('lz4', 'pc.ram', 3 * 4096, first, lz4.compress(first));
    e.compressedPage('zlib', 'pc.ram', 3 * 4096, second, nodeZlib.deflate(second, 1));
    e.ramEos().footer(RAM.sectionId);
  }
  e.raw(deviceTail());
  e.flush();
  return concatChunks(parts);
}

const digest = (b: Uint8Array) => createHash('sha1').update(b).digest('hex');

/** What a sink sees: the RAM digest at every iteration end, and the final RAM. */
function observe(): { handle: (ev: StreamEvent) => void; snapshots: string[]; ram: () => Uint8Array } {
  const ram = new RamImage();
  const snapshots: string[] = [];
  return {
    snapshots,
    ram: () => ram.blocks.get('pc.ram')!,
    handle: (ev) => {
      if (ev.type === 'ram-blocks') ram.setBlocks(ev.blocks);
      else if (ev.type === 'page') ram.apply(ev);
      else if (ev.type === 'iteration-end') snapshots.push(digest(ram.blocks.get('pc.ram')!));
    },
  };
}

const stream = raceStream();
const truth = (() => {
  const o = observe();
  decodeAll(stream, o.handle);
  return { snapshots: o.snapshots, ram: digest(o.ram()) };
})();

/**
 * Decodes `stream` through the pooled applier in landing order, with
 * decompression results delayed under the seed's schedule: each page is
 * its own batch and waits 0–12 event-loop turns (most none, a third slow),
 * and the input arrives in random slices.
 */
async function run(seed: number, unsafe: Pick<DecompressQueueOptions, 'unsafeNoBarrier' | 'unsafeNoPageWait'> = {}) {
  const r = rng(seed);
  const pool = new InlinePool(runTask, () => (r() < 0.35 ? 1 + Math.floor(r() * 12) : 0));
  const o = observe();
  const q = new DecompressQueue(o.handle, { pool, order: 'landing', batchPages: 1, ...unsafe });
  const d = new StreamDecoder(q.handle, { decompress: 'defer' });
  for (let at = 0; at < stream.length; ) {
    const n = 1 + Math.floor(r() * 20000);
    d.push(stream.subarray(at, at + n));
    at += n;
    await q.drain();
  }
  d.end();
  await q.finish();
  return { snapshots: o.snapshots, ram: digest(o.ram()) };
}

describe('the decompression barrier (landing order, seeded slow decompression)', () => {
  const RUNS = 2000;

  it(`with the barrier and the per-page wait: RAM and every iteration-end snapshot exact over ${RUNS} schedules`, async () => {
    let exact = 0;
    for (let seed = 1; seed <= RUNS; seed++) {
      const got = await run(seed);
      if (got.ram === truth.ram && got.snapshots.join() === truth.snapshots.join()) exact++;
    }
    expect(exact).toBe(RUNS);
  });

  it('without either rule, the same schedules corrupt RAM', async () => {
    let corrupt = 0;
    for (let seed = 1; seed <= 200; seed++) if ((await run(seed, { unsafeNoBarrier: true, unsafeNoPageWait: true })).ram !== truth.ram) corrupt++;
    expect(corrupt).toBeGreaterThan(0);
  });

  it('without the per-page wait alone, RAM goes wrong (the within-iteration races)', async () => {
    let corrupt = 0;
    for (let seed = 1; seed <= 200; seed++) if ((await run(seed, { unsafeNoPageWait: true })).ram !== truth.ram) corrupt++;
    expect(corrupt).toBeGreaterThan(0);
  });

  it('without the barrier alone, what a sink sees at an iteration end is wrong', async () => {
    let wrong = 0;
    for (let seed = 1; seed <= 200; seed++) {
      const got = await run(seed, { unsafeNoBarrier: true });
      expect(got.ram).toBe(truth.ram); // the per-page wait still saves the final RAM
      if (got.snapshots.join() !== truth.snapshots.join()) wrong++;
    }
    expect(wrong).toBeGreaterThan(0);
  });

  it('stream order: under the same schedules events reach the sink exactly in stream order', async () => {
    const order = (evs: StreamEvent[]) => evs.map((e) => (e.type === 'page' ? `${e.kind}@${e.offset}` : e.type)).join();
    const want: StreamEvent[] = [];
    decodeAll(stream, (ev) => want.push(ev));
    for (let seed = 1; seed <= 50; seed++) {
      const r = rng(seed);
      const got: StreamEvent[] = [];
      const q = new DecompressQueue((ev) => got.push(ev), { pool: new InlinePool(runTask, () => (r() < 0.35 ? 1 + Math.floor(r() * 12) : 0)), batchPages: 1 });
      const d = new StreamDecoder(q.handle, { decompress: 'defer' });
      d.push(stream);
      d.end();
      await q.finish();
      expect(order(got)).toBe(order(want));
    }
  });
});
