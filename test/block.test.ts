import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadFixture } from '../fixtures/qemu/lib.mjs';
import { StreamDecoder } from '../src/stream/decoder.js';
import { MigstreamError } from '../src/codec/errors.js';
import { ByteWriter } from '../src/codec/byte-writer.js';
import { DiskImage } from '../src/stream/disk-image.js';
import {
  formatWriteLog,
  parseWriteLog,
  SnapshotDiskSource,
  WriteLogDiskSource,
  type DiskSource,
  type DiskWrite,
  type Extent,
} from '../src/stream/disk-source.js';
import { encodeDumps } from '../src/stream/dump-encoder.js';
import type { StreamEvent } from '../src/stream/events.js';
import { concatChunks, transcodeBytes } from '../src/stream/transcode.js';
import { page, sameBytes } from './support/build.js';

const MiB = 1 << 20;
const DISK = 5.5 * MiB;

function baseImage(): Uint8Array {
  const img = new Uint8Array(DISK);
  img.set(
    page((i) => i * 13 + 1, MiB),
    0,
  ); // chunk 0: data
  img.set(
    page((i) => i >> 3, MiB / 2),
    5 * MiB,
  ); // last, partial chunk: data; chunks 1-4 zero
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

  it('property: disks up to 740 KiB of any size, chunk sizes 4 KiB–1 MiB, any writes: decode to the written disk, both formats', () => {
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

/** A sparse disk of any size: zeros except the written ranges, which later iterations add to. */
class SparseDisk implements DiskSource {
  readonly iterations: number;
  private at = 0;
  private readonly content: DiskWrite[] = [];

  constructor(
    readonly device: string,
    readonly size: number,
    initial: DiskWrite[],
    private readonly groups: DiskWrite[][],
  ) {
    this.content.push(...initial);
    this.iterations = groups.length;
  }

  read(offset: number, out: Uint8Array): void {
    out.fill(0);
    for (const w of this.content) {
      const from = Math.max(offset, w.offset);
      const to = Math.min(offset + out.length, w.offset + w.data.length);
      if (from < to) out.set(w.data.subarray(from - w.offset, to - w.offset), from - offset);
    }
  }

  advance(): Extent[] {
    const g = this.groups[this.at++] ?? [];
    this.content.push(...g);
    return g.map((w) => ({ offset: w.offset, length: w.data.length }));
  }
}

describe('block migration of a disk past 4 GiB', () => {
  // 4 GiB + 48 MiB + 3 sectors: offsets past 2^32 bytes (sector numbers past 2^23), a partial last chunk
  const SIZE = 2 ** 32 + 48 * MiB + 1536;
  const at4G = 2 ** 32;
  const initial: DiskWrite[] = [
    { offset: 0, data: page((i) => i + 3, 8192) },
    { offset: at4G - 4096, data: page((i) => i * 7 + 1, 12288) }, // straddles 4 GiB
    { offset: SIZE - 700, data: page((i) => 200 - i, 700) }, // the disk's last bytes
  ];
  const groups: DiskWrite[][] = [
    [{ offset: at4G + MiB - 512, data: page((i) => i ^ 0x5a, 1024) }], // straddles a 1 MiB chunk above 4 GiB
    [
      { offset: 2 ** 32 + 40 * MiB + 12345, data: page(() => 0xee, 100) },
      { offset: SIZE - 1, data: Uint8Array.of(9) },
    ],
  ];
  const final: DiskWrite[] = [...initial, ...groups.flat()];
  /** Windows around every write, compared exactly; the rest of the disk must read as zeros there too. */
  const windows = [
    ...final.map((w) => [Math.max(0, w.offset - 70000), Math.min(SIZE, w.offset + w.data.length + 70000)]),
    [3 * 2 ** 30, 3 * 2 ** 30 + MiB],
  ] as const;
  // 4 KiB chunks past 4 GiB cost 10 s here; the property test above covers them on small disks

  for (const chunk of [undefined, 65536]) {
    it(`${chunk ? `${chunk / 1024} KiB variable` : 'QEMU 1 MiB'} chunks: every byte near every write, and the disk's exact end`, () => {
      // streamed straight into the decoder: QEMU's zero-blocks capability keeps the 6 GiB of zeros small
      const disks = new DiskImage();
      const d = new StreamDecoder((ev) => ev.type === 'block-chunk' && disks.chunk(ev));
      if (chunk) d.enableExtensions(['block-chunks']);
      encodeDumps([{ idstr: 'pc.ram', dumps: [0, 1, 2].map(() => new Uint8Array(4096)) }], (c) => d.push(c), {
        disks: [new SparseDisk('vd', SIZE, initial, groups)],
        ...(chunk ? { blockChunkSize: chunk } : { zeroBlocks: true }),
      });
      d.end();
      const want = new SparseDisk('vd', SIZE, final, []);
      for (const [from, to] of windows) {
        const got = new Uint8Array(to - from);
        const ref = new Uint8Array(to - from);
        disks.read('vd', from, got);
        want.read(from, ref);
        expect(sameBytes(got, ref), `bytes ${from}..${to}`).toBe(true);
      }
      // QEMU's chunks run past the end to the next 1 MiB; variable chunks stop at the disk's size
      expect(disks.extent('vd')).toBe(chunk ? SIZE : Math.ceil(SIZE / MiB) * MiB);
    });
  }
});
