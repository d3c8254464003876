import { describe, expect, it } from 'vitest';
import { StreamDecoder } from '../src/stream/decoder.js';
import { MigstreamError } from '../src/codec/errors.js';
import { DiskImage } from '../src/stream/disk-image.js';
import { formatWriteLog, parseWriteLog, SnapshotDiskSource, WriteLogDiskSource, type DiskWrite } from '../src/stream/disk-source.js';
import { encodeDumps } from '../src/stream/dump-encoder.js';
import type { StreamEvent } from '../src/stream/events.js';
import { concatChunks } from '../src/stream/transcode.js';
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
    expect(() => decodeDisks(stream)).toThrow(MigstreamError);
    const { disks, perSection } = decodeDisks(stream, ['block-chunks']);
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
});
