import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DIRTY_BITMAP_CONFIG, FIXTURES_DIR, decompressFixture, runIncoming, type QmpClient } from '../fixtures/qemu/lib.mjs';
import { decodeAll } from '../src/stream/decoder.js';
import { DBM_START_ENABLED, DBM_START_PERSISTENT, DBM_ZEROES, type DirtyBitmapRecord } from '../src/stream/dirty-bitmap.js';
import { transcodeBytes } from '../src/stream/transcode.js';
import { decodeRam, sameBytes } from './support/build.js';
import { qemuGate } from './support/qemu.js';

// The real-QEMU 7.2 dirty-bitmap fixture (fixtures/qemu/generate-dirty-bitmap.mjs): three block dirty
// bitmaps (recording, disabled, persistent in a qcow2) migrated with the dirty-bitmaps capability; ground truth from QEMU's own
// x-debug-block-dirty-bitmap-sha256 and query-block before the migration.
const dir = join(FIXTURES_DIR, 'dirty-bitmap');
const truth = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as {
  device: string;
  diskSize: number;
  bitmaps: { name: string; granularity: number; count: number; recording: boolean; persistent: boolean; sha256: string }[];
};
const stream = new Uint8Array(decompressFixture(join(dir, 'stream.bin.br')));
const ram = new Uint8Array(decompressFixture(join(dir, 'ram.bin.br')));

interface Rebuilt {
  granularity: number;
  flags: number;
  /** The bitmap's bottom level as QEMU keeps it: 64-bit little-endian words, one bit per granule. */
  words: Uint8Array;
  completed: boolean;
}

/** Rebuilds every migrated bitmap from the stream's dirty-bitmap records. */
function rebuild(bytes: Uint8Array): { bitmaps: Map<string, Rebuilt>; raw: Uint8Array[]; dataLengths: number[] } {
  const bitmaps = new Map<string, Rebuilt>();
  const raw: Uint8Array[] = [];
  const dataLengths: number[] = [];
  decodeAll(bytes, (ev) => {
    if (ev.type !== 'dirty-bitmap') return;
    const r: DirtyBitmapRecord = ev.record;
    raw.push(r.raw.slice());
    dataLengths.push(r.data?.length ?? 0);
    const key = `${ev.node}/${ev.bitmap}`;
    if (r.kind === 'start') {
      const bits = Math.ceil(truth.diskSize / r.granularity!);
      bitmaps.set(key, { granularity: r.granularity!, flags: r.bitmapFlags!, words: new Uint8Array(Math.ceil(bits / 64) * 8), completed: false });
    } else if (r.kind === 'bits') {
      const b = bitmaps.get(key)!;
      const firstBit = (r.startSector! * 512) / b.granularity;
      expect(firstBit % 64).toBe(0); // QEMU sends whole words
      if (!(r.flags & DBM_ZEROES)) {
        // QEMU pads the serialised bits to 32 bytes (4 longs, for buffer_is_zero()): the padding is zero
        const fits = Math.min(r.data!.length, b.words.length - firstBit / 8);
        b.words.set(r.data!.subarray(0, fits), firstBit / 8);
        expect(r.data!.subarray(fits).every((x) => x === 0)).toBe(true);
        expect(r.data!.length % 32).toBe(0);
      }
    } else if (r.kind === 'complete') {
      bitmaps.get(key)!.completed = true;
    }
  });
  return { bitmaps, raw, dataLengths };
}

function popcount(words: Uint8Array): number {
  let n = 0;
  for (const byte of words) for (let v = byte; v; v &= v - 1) n++;
  return n;
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('the real-QEMU dirty-bitmap fixture', () => {
  it('decodes to the source RAM and to every bitmap exactly as QEMU hashed it', () => {
    expect(sameBytes(decodeRam(stream).ram.blocks.get('pc.ram')!, ram)).toBe(true);
    const { bitmaps } = rebuild(stream);
    expect([...bitmaps.keys()].sort()).toEqual(truth.bitmaps.map((b) => `${truth.device}/${b.name}`).sort());
    for (const t of truth.bitmaps) {
      const b = bitmaps.get(`${truth.device}/${t.name}`)!;
      expect(b.completed).toBe(true);
      expect(b.granularity).toBe(t.granularity);
      expect((b.flags & DBM_START_ENABLED) !== 0).toBe(t.recording);
      expect((b.flags & DBM_START_PERSISTENT) !== 0).toBe(t.persistent);
      expect(popcount(b.words) * t.granularity).toBe(t.count);
      expect(sha(b.words)).toBe(t.sha256);
    }
  });

  it("inspect reports every bitmap with QEMU's query-block counts and states", () => {
    const { stats } = decodeRam(stream);
    const got = stats.summary.dirtyBitmaps.map((b) => ({
      name: b.bitmap,
      node: b.node,
      granularity: b.granularity,
      count: b.dirtyGranules * b.granularity,
      recording: b.enabled,
      persistent: b.persistent,
      complete: b.complete,
    }));
    const want = truth.bitmaps.map((t) => ({
      name: t.name,
      node: truth.device,
      granularity: t.granularity,
      count: t.count,
      recording: t.recording,
      persistent: t.persistent,
      complete: true,
    }));
    expect(got.sort((a, b) => a.name.localeCompare(b.name))).toEqual(want.sort((a, b) => a.name.localeCompare(b.name)));
  });

  it('a flipped bit in a BITS record changes the rebuilt bitmap (the comparison can fail)', () => {
    const { raw, dataLengths } = rebuild(stream);
    const k = dataLengths.findIndex((n) => n > 0); // a BITS record with data
    const at = indexOf(stream, raw[k]!) + raw[k]!.length - dataLengths[k]!; // its first byte of bits
    const bad = stream.slice();
    bad[at]! ^= 0x01;
    const hashes = [...rebuild(bad).bitmaps.values()].map((b) => sha(b.words));
    expect(hashes.filter((h) => truth.bitmaps.some((t) => t.sha256 === h))).toHaveLength(truth.bitmaps.length - 1);
  });

  it('transcode passes every dirty-bitmap record through byte for byte', () => {
    const before = rebuild(stream).raw;
    const after = rebuild(transcodeBytes(stream)).raw;
    expect(after.length).toBe(before.length);
    after.forEach((r, i) => expect(sameBytes(r, before[i]!)).toBe(true));
  });
});

const gate = qemuGate();
const work = mkdtempSync(join(tmpdir(), 'migstream-dbm-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe.skipIf(!gate.run)('real QEMU 7.2 loads the dirty bitmaps of our transcode', () => {
  it('the destination has every bitmap with QEMU-identical content, state and RAM', async () => {
    const streamPath = join(work, 'dbm.stream');
    writeFileSync(streamPath, transcodeBytes(stream, { xbzrle: { cacheBytes: 4 << 20 } }));
    const r = await runIncoming({
      config: DIRTY_BITMAP_CONFIG,
      streamPath,
      workDir: join(work, 'dest'),
      timeoutMs: 90_000,
      onLoaded: async (qmp: QmpClient) => {
        const block = (
          (await qmp.execute('query-block')) as {
            device: string;
            inserted: { 'dirty-bitmaps': { name: string; granularity: number; count: number; recording: boolean; persistent: boolean }[] };
          }[]
        ).find((b) => b.device === truth.device)!;
        const list = [];
        for (const b of block.inserted['dirty-bitmaps']) {
          const { sha256 } = (await qmp.execute('x-debug-block-dirty-bitmap-sha256', { node: truth.device, name: b.name })) as { sha256: string };
          list.push({ name: b.name, granularity: b.granularity, count: b.count, recording: b.recording, persistent: b.persistent, sha256 });
        }
        return list.sort((a, b) => a.name.localeCompare(b.name));
      },
    });
    const want = truth.bitmaps.map(({ name, granularity, count, recording, persistent, sha256 }) => ({
      name,
      granularity,
      count,
      recording,
      persistent,
      sha256,
    }));
    expect(r.loaded).toEqual(want.sort((a, b) => a.name.localeCompare(b.name)));
    expect(sameBytes(readFileSync(r.ramPath), ram)).toBe(true);
  });
});

describe.skipIf(!gate.run)('a QEMU 7.2 quirk the fixture tooling works around', () => {
  it("a destination disk larger than the source's (here rounded up to 1 MiB) makes QEMU abort loading a bitmap", async () => {
    const streamPath = join(work, 'dbm-plain.stream');
    writeFileSync(streamPath, stream);
    // blk: true only makes runIncoming round the destination disk up to 1 MiB, as block migration needs
    const bigger = { ...DIRTY_BITMAP_CONFIG, blk: true };
    await expect(runIncoming({ config: bigger, streamPath, workDir: join(work, 'dest-bigger'), timeoutMs: 60_000 })).rejects.toThrow(
      /serialization_chunk|Assertion/,
    );
  });
});

function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  return Buffer.from(hay.buffer, hay.byteOffset, hay.length).indexOf(Buffer.from(needle.buffer, needle.byteOffset, needle.length));
}
