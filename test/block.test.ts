import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadFixture } from '../fixtures/qemu/lib.mjs';
import { StreamDecoder } from '../src/stream/decoder.js';
import { MigstreamError } from '../src/codec/errors.js';
import { ByteWriter } from '../src/codec/byte-writer.js';
import { DiskImage } from '../src/stream/disk-image.js';
import { formatWriteLog, parseWriteLog, SnapshotDiskSource, WriteLogDiskSource, type DiskWrite } from '../src/stream/disk-source.js';
import { encodeDumps } from '../src/stream/dump-encoder.js';
import type { StreamEvent } from '../src/stream/events.js';
import { concatChunks, transcodeBytes } from '../src/stream/transcode.js';
import { page, sameBytes } from './support/build.js';

const MiB = 1 << 20;
const DISK = 5.5 * MiB;

function baseImage(): Uint8Array {
  const img = new Uint8Array(DISK);
  img.set(page((i) => i * 13 + 1, MiB), 0); // chunk 0: data
  img.set(page((i) => i >> 3, MiB / 2), 5 * MiB); // last, partial chunk: data; chunks 1-4 zero
  return img;
}

function writes(): DiskWrite[][] {
  return [
    [{ offset: 3 * MiB + 4096, data: page((i) => i + 1, 4096) }],
    [
      { offset: 100, data: page(() => 7, 8192) },
      { offset: 5 * MiB + 10, data: page(() => 9, 100) },
    ],
  ];
}

function decodeDisks(stream: Uint8Array, extensions: string[] = []) {
  const disks = new DiskImage();
  const perSection: number[][] = [];
  const kinds: string[] = [];
  const d = new StreamDecoder((ev: StreamEvent) => {
    if (ev.type === 'section' && ev.section.idstr === 'block') {
      perSection.push([]);
      kinds.push(ev.kind);
    }
    if (ev.type === 'block-chunk') {
      perSection.at(-1)!.push(ev.zero ? -ev.sector - 1 : ev.sector);
      disks.chunk(ev);
    }
  });
  d.enableExtensions(extensions);
  d.push(stream);
  d.end();
  return { disks, perSection, kinds };
}

describe('block migration sender (QEMU format)', () => {
  it('write logs round-trip through their file format', () => {
    const groups = writes();
    expect(parseWriteLog(formatWriteLog(groups))).toEqual(groups);
  });

  for (const zeroBlocks of [false, true]) {
    it(`sends a bulk pass, then exactly the dirty 1 MiB chunks (zero-blocks ${zeroBlocks})`, () => {
      const image = baseImage();
      const final = image.slice();
      for (const g of writes()) for (const w of g) final.set(w.data, w.offset);
      const ram = [{ idstr: 'pc.ram', dumps: [new Uint8Array(8192), new Uint8Array(8192), new Uint8Array(8192)] }];
      const parts: Uint8Array[] = [];
      const r = encodeDumps(ram, (c) => parts.push(c), { disks: [new WriteLogDiskSource('ide0-hd1', image, writes())], zeroBlocks });
      const { disks, perSection, kinds } = decodeDisks(concatChunks(parts));
      expect(kinds).toEqual(['start', 'part', 'part', 'end']);
      const z = (s: number) => (zeroBlocks ? -s - 1 : s);
      expect(perSection).toEqual([[], [0, z(2048), z(4096), z(6144), z(8192), 10240], [6144], [0, 10240]]);
      expect(r.blocks.map((b) => b.chunks)).toEqual([6, 1, 2]);
      const got = new Uint8Array(DISK);
      disks.read('ide0-hd1', 0, got);
      expect(sameBytes(got, final)).toBe(true);
    });
  }

  it('finds the same dirty chunks from a snapshot series', () => {
    const a = baseImage();
    const b = a.slice();
    b[4 * MiB + 5] = 1;
    const src = new SnapshotDiskSource('d', [a, b]);
    expect(src.advance()).toEqual([{ offset: 4 * MiB, length: 4096 }]);
  });

  it('variable-size chunks: exact lengths, zero chunks, only the written 64 KiB sent', () => {
    const image = baseImage();
    const final = image.slice();
    for (const g of writes()) for (const w of g) final.set(w.data, w.offset);
    const ram = [{ idstr: 'pc.ram', dumps: [new Uint8Array(8192), new Uint8Array(8192), new Uint8Array(8192)] }];
    const parts: Uint8Array[] = [];
    const r = encodeDumps(ram, (c) => parts.push(c), {
      disks: [new WriteLogDiskSource('ide0-hd1', image, writes())],
      blockChunkSize: 64 * 1024,
    });
    const stream = concatChunks(parts);
    const { disks, perSection } = decodeDisks(stream);
    const K64 = 128; // sectors per 64 KiB
    expect(perSection[2]).toEqual([3 * 2048 + 0 * K64]); // the 4 KiB write at 3 MiB + 4 KiB
    expect(perSection[3]).toEqual([0, 5 * 2048]);
    expect(r.blocks[0]!.chunks).toBe(88); // 5.5 MiB / 64 KiB
    expect(r.blocks[0]!.zeroChunks).toBe(88 - 16 - 8);
    const got = new Uint8Array(DISK);
    disks.read('ide0-hd1', 0, got);
    expect(sameBytes(got, final)).toBe(true);
    expect(disks.extent('ide0-hd1')).toBe(DISK);
  });

  it('rejects a variable-size chunk in a stream whose manifest did not declare block-chunks', () => {
    const w = new ByteWriter().be32(0x5145564d).be32(3).u8(1).be32(1).str8('block').be32(0).be32(1);
    w.be64(0x11).str8('d0').be32(4096).bytes(new Uint8Array(4096)).be64(0x02).u8(0x7e).be32(1).u8(0);
    const bytes = w.take();
    const e = (() => {
      try {
        decodeDisks(bytes);
      } catch (err) {
        return err;
      }
    })();
    expect(e).toBeInstanceOf(MigstreamError);
    expect((e as MigstreamError).message).toContain('Unknown block migration flags: 0x11');
    expect(decodeDisks(bytes, ['block-chunks']).perSection).toEqual([[0]]);
  });

  it('property: any disk size, chunk size and write pattern decodes to the written disk, both formats', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }).map((n) => n * 512 * 37), // sizes that rarely align to a chunk
        fc.constantFrom(4096, 16384, 65536, 1 << 20),
        fc.array(fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 20000 }), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), {
          minLength: 1,
          maxLength: 3,
        }),
        (size, chunk, rawGroups) => {
          const image = new Uint8Array(size);
          for (let i = 0; i < size; i += 997) image[i] = i & 0xff;
          const groups = rawGroups.map((g) =>
            g.map(([at, len, v]) => {
              const offset = at % size;
              return { offset, data: new Uint8Array(Math.min(len, size - offset)).fill(v) };
            }),
          );
          const final = image.slice();
          for (const g of groups) for (const w of g) final.set(w.data, w.offset);
          const dumps = Array.from({ length: groups.length + 1 }, () => new Uint8Array(4096));
          const parts: Uint8Array[] = [];
          encodeDumps([{ idstr: 'pc.ram', dumps }], (c) => parts.push(c), {
            disks: [new WriteLogDiskSource('vd', image.slice(), groups)],
            blockChunkSize: chunk,
          });
          const variable = concatChunks(parts);
          const got = new Uint8Array(size);
          decodeDisks(variable).disks.read('vd', 0, got);
          expect(sameBytes(got, final)).toBe(true);
          // back to QEMU's 1 MiB chunks: same disk (QEMU's receiver clips at its own size)
          const qemu = transcodeBytes(variable);
          const back = decodeDisks(qemu);
          expect(back.disks.extent('vd') % (1 << 20)).toBe(0);
          back.disks.read('vd', 0, got);
          expect(sameBytes(got, final)).toBe(true);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('transcode --chunk splits the real QEMU block fixture, and back to QEMU chunks keeps the disk', () => {
    for (const name of ['block', 'block-zero']) {
      const fx = loadFixture(name);
      const size = fx.config.disk!.size;
      const variable = transcodeBytes(fx.stream, { blockChunk: 65536, diskSizes: { 'ide0-hd1': size } });
      const v = decodeDisks(variable);
      const got = new Uint8Array(size);
      v.disks.read('ide0-hd1', 0, got);
      expect(sameBytes(got, fx.disks['ide0-hd1']!)).toBe(true);
      expect(v.disks.extent('ide0-hd1')).toBe(size);
      expect(variable.length).toBeLessThan(fx.stream.length - (1 << 20)); // 2 MiB of zeros became zero chunks
      const back = decodeDisks(transcodeBytes(variable));
      back.disks.read('ide0-hd1', 0, got);
      expect(sameBytes(got, fx.disks['ide0-hd1']!)).toBe(true);
    }
  });
});
