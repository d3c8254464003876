import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadFixture } from '../fixtures/qemu/lib.mjs';
import { ByteWriter } from '../src/codec/byte-writer.js';
import { MigstreamError } from '../src/codec/errors.js';
import { StreamDecoder, type DecoderOptions } from '../src/stream/decoder.js';
import { DiskImage } from '../src/stream/disk-image.js';
import { WriteLogDiskSource, type DiskWrite } from '../src/stream/disk-source.js';
import { encodeDumps, type DumpEncodeOptions } from '../src/stream/dump-encoder.js';
import type { BlockChunkEvent, StreamEvent } from '../src/stream/events.js';
import { encodeManifest } from '../src/stream/manifest.js';
import { blockChunksEntry, chunkCompressionEntry } from '../src/stream/extensions/registry.js';
import { StatsCollector } from '../src/stream/stats.js';
import { concatChunks, transcodeBytes } from '../src/stream/transcode.js';
import { decodePooled, encodeDumpsPooled, transcodeBytesPooled, transcodePooled } from '../src/stream/pool/drivers.js';
import { InlinePool, ThreadPool } from '../src/stream/pool/thread-pool.js';
import { runTask } from '../src/stream/pool/tasks.js';
import { nodeZlib } from '../src/stream/zlib-node.js';
import { Lz4Compressor } from '../src/codec/lz4-block.js';
import { BLOCK, sameBytes } from './support/build.js';
import { prng } from './support/prng.js';

const KiB = 1024;
const MiB = 1 << 20;
const DISK = 3 * MiB + 40 * KiB; // not a multiple of any chunk size

/** A disk that compresses like a real one: text-like runs, zero stretches, and one incompressible stretch. */
function diskImage(size = DISK, seed = 11): Uint8Array {
  const rand = prng(seed);
  const img = new Uint8Array(size);
  const words = ['block', 'chunk', 'qemu', 'migrate', 'sector', 'dirty', 'page', 'lz4'];
  let at = 0;
  while (at < MiB) {
    const w = words[Math.floor(rand() * words.length)]!;
    for (let i = 0; i < w.length && at < MiB; i++) img[at++] = w.charCodeAt(i);
    img[at++] = 0x20;
  }
  for (let i = 2 * MiB; i < 2 * MiB + 256 * KiB; i++) img[i] = Math.floor(rand() * 256); // incompressible
  for (let i = 3 * MiB; i < size; i++) img[i] = i & 0x3f;
  return img;
}

function writes(seed = 5): DiskWrite[][] {
  const rand = prng(seed);
  return [0, 1, 2].map(() =>
    Array.from({ length: 6 }, () => {
      const length = 512 * (1 + Math.floor(rand() * 40));
      const offset = Math.floor(rand() * (DISK - length));
      const data = new Uint8Array(length);
      for (let i = 0; i < length; i++) data[i] = rand() < 0.5 ? 0x61 : Math.floor(rand() * 256);
      return { offset, data };
    }),
  );
}

function finalDisk(image: Uint8Array, groups: DiskWrite[][]): Uint8Array {
  const out = image.slice();
  for (const g of groups) for (const w of g) out.set(w.data, w.offset);
  return out;
}

const ram = () => [{ idstr: 'pc.ram', dumps: [0, 1, 2, 3].map((i) => new Uint8Array(16 * 4096).fill(i)) }];

function encode(options: DumpEncodeOptions, image = diskImage(), groups = writes()): Uint8Array {
  const parts: Uint8Array[] = [];
  encodeDumps(ram(), (c) => parts.push(c.slice()), { disks: [new WriteLogDiskSource('vd0', image.slice(), groups)], ...options });
  return concatChunks(parts);
}

/** Applies every block chunk of a stream (decoded inline) to a disk image; returns it with the chunk events. */
function decodeDisk(stream: Uint8Array, options: DecoderOptions = {}) {
  const disks = new DiskImage();
  const chunks: BlockChunkEvent[] = [];
  const stats = new StatsCollector();
  const d = new StreamDecoder((ev: StreamEvent) => {
    stats.handle(ev);
    if (ev.type === 'block-chunk') {
      chunks.push({ ...ev, data: ev.data.slice() });
      disks.chunk(ev);
    }
  }, options);
  d.push(stream);
  d.end();
  return { disks, chunks, summary: stats.summary };
}

function readDisk(disks: DiskImage, size = DISK): Uint8Array {
  const got = new Uint8Array(size);
  disks.read('vd0', 0, got);
  return got;
}

function failure(run: () => unknown): MigstreamError {
  try {
    run();
  } catch (e) {
    if (e instanceof MigstreamError) return e;
    throw e;
  }
  throw new Error('expected a MigstreamError');
}

describe('compressed variable-size chunks (extension "chunk-compression")', () => {
  const final = finalDisk(diskImage(), writes());

  for (const codec of ['lz4', 'zlib'] as const) {
    it(`${codec}: the disk decodes byte-exact, compressible chunks go compressed, the others plain`, () => {
      const plain = encode({ blockChunkSize: 64 * KiB });
      const packed = encode({ blockChunkSize: 64 * KiB, chunkCompress: { codec } });
      const p = decodeDisk(plain);
      const c = decodeDisk(packed);
      expect(sameBytes(readDisk(c.disks), final)).toBe(true);
      expect(sameBytes(readDisk(p.disks), final)).toBe(true);
      // same chunks at the same places, only their carriage differs
      expect(c.chunks.map((x) => [x.sector, x.length, x.zero])).toEqual(p.chunks.map((x) => [x.sector, x.length, x.zero]));
      const compressed = c.chunks.filter((x) => x.codec === codec);
      const nonZero = c.chunks.filter((x) => !x.zero);
      // the 256 KiB of random bytes (4 chunks in the bulk pass) cannot shrink; everything else does
      expect(nonZero.length - compressed.length).toBeGreaterThanOrEqual(4);
      expect(compressed.length).toBeGreaterThan(nonZero.length / 2);
      expect(c.chunks.some((x) => x.codec && x.codec !== codec)).toBe(false);
      for (const x of compressed) expect(x.compressedBytes).toBeLessThan(x.length);
      const dev = c.summary.blockDevices[0]!;
      expect(dev.compressedChunks).toBe(compressed.length);
      expect(dev.compressedChunkBytes).toBe(compressed.reduce((n, x) => n + x.length, 0));
      expect(dev.bytes).toBeLessThan(p.summary.blockDevices[0]!.bytes / 2);
      expect(packed.length).toBeLessThan(plain.length / 2);
      const m = c.summary.manifest!.extensions.find((e) => e.name === 'chunk-compression')!;
      expect(m.params).toEqual({ flag: 0x20, codec, level: 1 });
    });
  }

  it('pooled encode writes the same bytes as the synchronous one, for 1 and 2 workers, with pages compressed too', async () => {
    for (const [codec, pages] of [
      ['lz4', 'lz4'],
      ['zlib', 'zlib'],
      ['lz4', undefined],
    ] as const) {
      const options: DumpEncodeOptions = {
        blockChunkSize: 16 * KiB,
        chunkCompress: { codec },
        compress: pages && { codec: pages },
        xbzrle: { cacheBytes: 1 << 20 },
        digest: 'xxh64',
      };
      const expected = encode(options);
      for (const workers of [1, 2]) {
        const parts: Uint8Array[] = [];
        const r = await encodeDumpsPooled(ram(), (c) => void parts.push(c.slice()), {
          ...options,
          disks: [new WriteLogDiskSource('vd0', diskImage(), writes())],
          workers,
          batchPages: 8,
          maxInFlight: 64,
        });
        const got = concatChunks(parts);
        expect(sameBytes(got, expected), `${codec}/${pages}/${workers}`).toBe(true);
        // block byte counts settle once the pool drained: they add up to the block records written
        expect(r.blocks.map((b) => b.chunks)).toEqual([Math.ceil(DISK / (16 * KiB)), expect.any(Number), expect.any(Number), expect.any(Number)]);
        expect(r.blocks.every((b) => b.bytes > 0)).toBe(true);
      }
    }
  });

  it('a sink that returns a non-promise (`(c) => parts.push(c)`) works with every pooled driver', async () => {
    const options: DumpEncodeOptions = { blockChunkSize: 64 * KiB, chunkCompress: { codec: 'lz4' }, compress: { codec: 'zlib' } };
    const parts: Uint8Array[] = [];
    await encodeDumpsPooled(ram(), (c) => parts.push(c.slice()), { ...options, disks: [new WriteLogDiskSource('vd0', diskImage(), writes())], workers: 1 });
    const encoded = concatChunks(parts);
    expect(sameBytes(encoded, encode(options))).toBe(true);
    const out: Uint8Array[] = [];
    await transcodePooled(encoded, (c) => out.push(c.slice()), { workers: 1 });
    await transcodePooled(encoded, (c) => out.push(c.slice()), { workers: 1, compress: { codec: 'lz4' } });
    expect(out.length).toBeGreaterThan(0);
  });

  it("block byte counts of the pooled encoder equal the synchronous encoder's", async () => {
    const options: DumpEncodeOptions = { blockChunkSize: 64 * KiB, chunkCompress: { codec: 'lz4' } };
    const parts: Uint8Array[] = [];
    const sync = encodeDumps(ram(), (c) => parts.push(c), { ...options, disks: [new WriteLogDiskSource('vd0', diskImage(), writes())] });
    const pooled = await encodeDumpsPooled(ram(), () => {}, { ...options, disks: [new WriteLogDiskSource('vd0', diskImage(), writes())], workers: 2 });
    expect(pooled.blocks).toEqual(sync.blocks);
    expect(sync.blocks[0]!.compressedChunks).toBeGreaterThan(0);
  });

  it('decodes on the pool (stream and landing order) to the same disk and the same events as inline', async () => {
    const packed = encode({ blockChunkSize: 4 * KiB, chunkCompress: { codec: 'lz4' }, compress: { codec: 'lz4' } });
    const inline = decodeDisk(packed);
    for (const order of ['stream', 'landing'] as const) {
      const disks = new DiskImage();
      const seen: [number, number, string | undefined][] = [];
      await decodePooled(
        packed,
        (ev) => {
          if (ev.type === 'block-chunk') {
            expect(ev.encoded).toBeFalsy();
            seen.push([ev.sector, ev.length, ev.codec]);
            disks.chunk(ev);
          }
        },
        { workers: 2, order, batchPages: 4, maxInFlight: 16 },
      );
      expect(seen).toEqual(inline.chunks.map((x) => [x.sector, x.length, x.codec]));
      expect(sameBytes(readDisk(disks), final)).toBe(true);
    }
  });

  it('an inline pool with slow, shuffled batches still applies chunks in stream order', async () => {
    const packed = encode({ blockChunkSize: 4 * KiB, chunkCompress: { codec: 'zlib' } });
    const rand = prng(3);
    const pool = new InlinePool(runTask, () => Math.floor(rand() * 4));
    const disks = new DiskImage();
    const sectors: number[] = [];
    await decodePooled(
      packed,
      (ev) => {
        if (ev.type === 'block-chunk') {
          sectors.push(ev.sector);
          disks.chunk(ev);
        }
      },
      { pool, batchPages: 2, order: 'landing' },
    );
    expect(sectors).toEqual(decodeDisk(packed).chunks.map((x) => x.sector));
    expect(sameBytes(readDisk(disks), final)).toBe(true);
  });

  it('transcode: the real QEMU block fixtures → compressed 64 KiB chunks → QEMU 1 MiB chunks, disks exact, pooled bytes = sync bytes', async () => {
    for (const name of ['block', 'block-zero']) {
      const fx = loadFixture(name);
      const size = fx.config.disk!.size;
      const truth = fx.disks['ide0-hd1']!;
      const options = { blockChunk: 64 * KiB, chunkCompress: { codec: 'lz4' as const }, diskSizes: { 'ide0-hd1': size } };
      const packed = transcodeBytes(fx.stream, options);
      const pool = new ThreadPool(2);
      try {
        expect(sameBytes(await transcodeBytesPooled(fx.stream, { ...options, pool }), packed)).toBe(true);
      } finally {
        await pool.close();
      }
      const c = decodeDisk(packed);
      const got = new Uint8Array(size);
      c.disks.read('ide0-hd1', 0, got);
      expect(sameBytes(got, truth)).toBe(true);
      expect(c.chunks.filter((x) => x.codec === 'lz4').length).toBeGreaterThan(0);
      const plainVar = transcodeBytes(fx.stream, { blockChunk: 64 * KiB, diskSizes: { 'ide0-hd1': size } });
      expect(packed.length).toBeLessThan(plainVar.length);
      // back to QEMU's format: no manifest, 1 MiB chunks, same disk
      const back = transcodeBytes(packed);
      const b = decodeDisk(back);
      expect(b.summary.manifest).toBeNull();
      expect(new Set(b.chunks.map((x) => x.length))).toEqual(new Set([MiB]));
      b.disks.read('ide0-hd1', 0, got);
      expect(sameBytes(got, truth)).toBe(true);
    }
  });

  it('property: disks of any size up to 740 KiB, chunk sizes 4 KiB–1 MiB, either codec, any writes: decode == source, pool == sync', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 40 }).map((n) => n * 512 * 37),
        fc.constantFrom(4096, 16384, 65536, MiB),
        fc.constantFrom('lz4' as const, 'zlib' as const),
        fc.array(fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 20000 }), fc.integer({ min: 0, max: 3 })), { maxLength: 6 }), {
          minLength: 1,
          maxLength: 3,
        }),
        async (size, chunk, codec, rawGroups) => {
          const image = new Uint8Array(size);
          for (let i = 0; i < size; i += 7) image[i] = (i >> 9) & 0xff;
          const groups = rawGroups.map((g) =>
            g.map(([at, len, kind]) => {
              const offset = at % size;
              const data = new Uint8Array(Math.min(len, size - offset));
              // kind: 0 zeros, 1 a repeated byte, 2 a ramp, 3 noise (does not compress)
              for (let i = 0; i < data.length; i++) data[i] = kind === 1 ? 0x5a : kind === 2 ? i & 0xff : kind === 3 ? Math.imul(i + at, 2654435761) >>> 24 : 0;
              return { offset, data };
            }),
          );
          const want = finalDisk(image, groups);
          const dumps = Array.from({ length: groups.length + 1 }, () => new Uint8Array(4096));
          const options: DumpEncodeOptions = { blockChunkSize: chunk, chunkCompress: { codec } };
          const parts: Uint8Array[] = [];
          encodeDumps([{ idstr: 'pc.ram', dumps }], (c) => parts.push(c.slice()), {
            ...options,
            disks: [new WriteLogDiskSource('vd0', image.slice(), groups)],
          });
          const stream = concatChunks(parts);
          expect(sameBytes(readDisk(decodeDisk(stream).disks, size), want)).toBe(true);
          const pooled: Uint8Array[] = [];
          await encodeDumpsPooled([{ idstr: 'pc.ram', dumps }], (c) => void pooled.push(c.slice()), {
            ...options,
            disks: [new WriteLogDiskSource('vd0', image.slice(), groups)],
            pool: new InlinePool(runTask),
            batchPages: 3,
          });
          expect(sameBytes(concatChunks(pooled), stream)).toBe(true);
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe('compressed chunks: malformed input', () => {
  const lz4 = new Lz4Compressor(1);
  const data = new Uint8Array(8192).fill(0x41);

  /** A stream with one block section holding `record` (bytes after the record header), declaring `extensions`. */
  function stream(
    flags: number,
    body: (w: ByteWriter) => void,
    extensions = [blockChunksEntry(8192), chunkCompressionEntry('lz4', 1)],
  ): { bytes: Uint8Array; recordAt: number } {
    const w = new ByteWriter().be32(0x5145564d).be32(3);
    if (extensions.length) {
      const m = encodeManifest(extensions);
      w.u8(0x08).be16(0x6d73).be16(m.length).bytes(m);
    }
    w.u8(1).be32(BLOCK.sectionId).str8('block').be32(0).be32(1);
    const recordAt = w.length;
    w.be64(flags).str8('vd0');
    body(w);
    w.be64(0x02).u8(0x7e).be32(BLOCK.sectionId).u8(0);
    return { bytes: w.take(), recordAt };
  }
  const header = 8 + 1 + 3; // be64, str8 "vd0"
  const good = (w: ByteWriter, payload = lz4.compress(data), codec = 2, length = 8192) => w.be32(length).u8(codec).be32(payload.length).bytes(payload);

  it('a well-formed record decodes (the baseline the cases below break)', () => {
    const { bytes } = stream(0x31, (w) => good(w));
    const { chunks } = decodeDisk(bytes);
    expect(chunks).toHaveLength(1);
    expect(sameBytes(chunks[0]!.data, data)).toBe(true);
  });

  const cases: [string, number, (w: ByteWriter) => void, string, number, string][] = [
    ['an unknown codec byte', 0x31, (w) => good(w, lz4.compress(data), 9), 'BAD_BLOCK_RECORD', header + 4, 'expected a chunk codec'],
    ['a compressed length of 0', 0x31, (w) => w.be32(8192).u8(2).be32(0), 'DECOMPRESS', header + 5, 'found 0'],
    ['a compressed length not below the chunk', 0x31, (w) => w.be32(8192).u8(2).be32(8192).bytes(data), 'DECOMPRESS', header + 5, 'found 8192'],
    ['an LZ4 block one byte short', 0x31, (w) => good(w, lz4.compress(data).subarray(0, -1)), 'DECOMPRESS', header + 9, 'lz4 chunk failed'],
    ['an LZ4 block of the wrong size', 0x31, (w) => good(w, lz4.compress(data.subarray(0, 4096))), 'DECOMPRESS', header + 9, 'lz4 chunk failed'],
    [
      'a zlib stream inflating past the chunk',
      0x31,
      (w) => good(w, nodeZlib.deflate(new Uint8Array(16384), 1), 1),
      'DECOMPRESS',
      header + 9,
      'zlib chunk failed',
    ],
    ['a zlib stream inflating short', 0x31, (w) => good(w, nodeZlib.deflate(new Uint8Array(4096), 1), 1), 'DECOMPRESS', header + 9, 'inflated to 4096 bytes'],
    ['garbage as zlib', 0x31, (w) => good(w, new Uint8Array(100).fill(7), 1), 'DECOMPRESS', header + 9, 'zlib chunk failed'],
    ['the compressed flag on a zero chunk', 0x39, (w) => good(w), 'BAD_BLOCK_RECORD', 0, 'must be a variable-size, non-zero chunk'],
  ];
  for (const [what, flags, body, code, at, message] of cases) {
    it(`${what}: ${code} at its byte, inline and on the pool`, async () => {
      const { bytes, recordAt } = stream(flags, body);
      const e = failure(() => decodeDisk(bytes));
      expect(e.code).toBe(code);
      expect(e.offset).toBe(recordAt + at);
      expect(e.message).toContain(message);
      expect(e.context.device).toBe('vd0');
      if (code === 'DECOMPRESS' && at === header + 9) {
        const p = await decodePooled(bytes, () => {}, { pool: new InlinePool(runTask) }).then(
          () => undefined,
          (err: unknown) => err as MigstreamError,
        );
        expect(p?.code).toBe(code);
        expect(p?.offset).toBe(e.offset);
      }
    });
  }

  it('the compressed flag without chunk-compression declared: the unknown-flags error', () => {
    const { bytes, recordAt } = stream(0x31, (w) => good(w), [blockChunksEntry(8192)]);
    const e = failure(() => decodeDisk(bytes));
    expect([e.code, e.offset]).toEqual(['BAD_BLOCK_RECORD', recordAt]);
    expect(e.message).toContain('Unknown block migration flags: 0x31');
  });

  it('chunk-compression declared without block-chunks, or with a wrong flag: BAD_MANIFEST', () => {
    const alone = stream(0x31, (w) => good(w), [chunkCompressionEntry('lz4', 1)]);
    expect(failure(() => decodeDisk(alone.bytes)).code).toBe('BAD_MANIFEST');
    const wrong = { ...chunkCompressionEntry('lz4', 1), params: { flag: 0x40, codec: 'lz4', level: 1 } };
    expect(failure(() => decodeDisk(stream(0x31, (w) => good(w), [blockChunksEntry(8192), wrong]).bytes)).message).toContain('expected 0x20');
  });

  it('every strict prefix of a compressed-chunk stream ends in a typed error', () => {
    const bytes = encode({ blockChunkSize: 64 * KiB, chunkCompress: { codec: 'zlib' } }, diskImage(256 * KiB), [[], [], []]);
    for (let n = 0; n < bytes.length; n += 97) {
      const e = failure(() => decodeDisk(bytes.subarray(0, n)));
      expect(e.code).toBe('TRUNCATED');
    }
  });
});
