import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { unpackFixture } from '../fixtures/multifd/lib.mjs';
import '../src/node/install.js';
import { MigstreamError } from '../src/codec/errors.js';
import { MultifdPool } from '../src/multifd/pool-recoder.js';
import { MultifdRecoder, type MultifdRelayOptions } from '../src/multifd/recode.js';
import { liveWorkerThreads } from '../src/stream/pool/thread-pool.js';
import { requireBuiltCli } from './support/cli.js';

requireBuiltCli(); // the workers run dist/multifd/pool-worker.js

const work = mkdtempSync(join(tmpdir(), 'migstream-multifd-pool-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Each channel file (conn-1…) of a fixture recording, in id order of the files. */
function channels(fixture: string): Buffer[] {
  const f = unpackFixture(fixture, join(work, fixture));
  return readdirSync(f.rec)
    .filter((x) => /^conn-[1-9]\d*\.s2d$/.test(x))
    .sort()
    .map((x) => readFileSync(join(f.rec, x)));
}

/** The inline path: what `relay --multifd-compression` wrote before the pool. */
function inline(bytes: Uint8Array, o: MultifdRelayOptions, step: number): Buffer {
  const out: Uint8Array[] = [];
  const r = new MultifdRecoder(o, (c) => out.push(c.slice()));
  for (let at = 0; at < bytes.length; at += step) r.push(bytes.subarray(at, at + step));
  r.end();
  return Buffer.concat(out);
}

/** All channels at once on `pool`, chunks interleaved as sockets would deliver them. */
async function pooled(pool: MultifdPool, all: Uint8Array[], o: MultifdRelayOptions, step: number): Promise<Buffer[]> {
  const outs: Uint8Array[][] = all.map(() => []);
  const errors: Error[] = [];
  const recs = all.map((_, i) =>
    pool.channel(
      o,
      (c) => outs[i]!.push(c),
      (e) => errors.push(e),
      4096,
      `conn-${i + 1}`,
    ),
  );
  const longest = Math.max(...all.map((b) => b.length));
  for (let at = 0; at < longest; at += step) all.forEach((b, i) => at < b.length && recs[i]!.push(b.slice(at, at + step)));
  await Promise.all(recs.map((r) => r.end()));
  expect(errors).toEqual([]);
  return outs.map((o) => Buffer.concat(o));
}

describe('multifd channels on the worker pool (relay --workers with --multifd-compression)', () => {
  for (const [fixture, o] of [
    ['none-2', { compression: 'zstd', level: 3 }],
    ['none-2', { compression: 'zstd-dedup', level: 1 }],
    ['none-2', { compression: 'brotli', level: 5 }],
    ['zlib-4', { compression: 'zstd', level: 1 }],
    ['zstd-4', { compression: 'zlib', level: 1 }],
    ['zstd-2', { compression: 'none' }],
  ] as const) {
    it(`${fixture} → ${o.compression}: every channel's bytes equal the inline recoder's, channels pinned one per worker`, async () => {
      const all = channels(fixture);
      const pool = new MultifdPool(all.length);
      try {
        const step = 65536 + 7; // packets cut across tasks
        const got = await pooled(pool, all, o, step);
        all.forEach((b, i) => expect(got[i]!.equals(inline(b, o, step))).toBe(true));
        expect(pool.load).toEqual(Array(all.length).fill(0)); // every channel released its worker
      } finally {
        await pool.close();
      }
    });
  }

  it('zstd-dedup → none on the pool: the pages a channel keeps for its references stay in the worker (its output is copied, not taken)', async () => {
    const between = channels('none-2').map((b) => inline(b, { compression: 'zstd-dedup', level: 1 }, 65536));
    const pool = new MultifdPool(between.length);
    try {
      const got = await pooled(pool, between, { compression: 'none' }, 65536);
      between.forEach((b, i) => expect(got[i]!.equals(inline(b, { compression: 'none' }, 65536))).toBe(true));
    } finally {
      await pool.close();
    }
  });

  it('more channels than workers: channels share workers (least loaded first), state kept apart, output unchanged', async () => {
    const all = channels('zlib-4');
    const pool = new MultifdPool(2);
    try {
      const o = { compression: 'zstd', level: 1 } as const;
      const outs: Uint8Array[][] = all.map(() => []);
      const recs = all.map((_, i) =>
        pool.channel(
          o,
          (c) => outs[i]!.push(c),
          () => {},
        ),
      );
      expect(pool.load).toEqual([2, 2]);
      for (let at = 0; at < Math.max(...all.map((b) => b.length)); at += 100000) all.forEach((b, i) => recs[i]!.push(b.slice(at, at + 100000)));
      await Promise.all(recs.map((r) => r.end()));
      all.forEach((b, i) => expect(Buffer.concat(outs[i]!).equals(inline(b, o, 100000))).toBe(true));
    } finally {
      await pool.close();
    }
  });

  it('a channel cut inside a packet fails TRUNCATED at its offset, naming the channel; the worker goes on serving other channels', async () => {
    const [a, b] = channels('zstd-2');
    const pool = new MultifdPool(1);
    try {
      const errors: Error[] = [];
      const cut = pool.channel(
        { compression: 'zlib', level: 1 },
        () => {},
        (e) => errors.push(e),
        4096,
        'conn-1',
      );
      cut.push(a!.slice(0, 64 + 1344 + 100));
      await expect(cut.end()).rejects.toThrow(MigstreamError);
      expect(errors).toHaveLength(1);
      expect((errors[0] as MigstreamError).code).toBe('TRUNCATED');
      // the inline recoder's very error: byte offset, what was expected, the channel's id
      expect(errors[0]!.message).toBe('at byte 1508: the connection ended inside a packet header (needed 1344 bytes) (multifd channel 0)');
      expect(() => inline(a!.slice(0, 64 + 1344 + 100), { compression: 'zlib', level: 1 }, 65536)).toThrow(errors[0]!.message);
      expect(pool.load).toEqual([0]);
      const [ok] = await pooled(pool, [b!], { compression: 'zlib', level: 1 }, 65536);
      expect(ok!.equals(inline(b!, { compression: 'zlib', level: 1 }, 65536))).toBe(true);
    } finally {
      await pool.close();
    }
    expect(liveWorkerThreads).toBe(0);
  });
});
