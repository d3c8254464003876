import { encode } from '@msgpack/msgpack';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { loadFixture } from '../fixtures/qemu/lib.mjs';
import { MigstreamError } from '../src/codec/errors.js';
import { Lz4Compressor, lz4DecompressInto } from '../src/codec/lz4-block.js';
import { fflateZlib } from '../src/codec/zlib-page.js';
import { decodeAll, StreamDecoder } from '../src/stream/decoder.js';
import { StreamEncoder } from '../src/stream/encoder.js';
import type { StreamEvent } from '../src/stream/events.js';
import { encodeManifest } from '../src/stream/manifest.js';
import { lz4PagesEntry } from '../src/stream/extensions/registry.js';
import { DecompressQueue } from '../src/stream/pool/decompress-queue.js';
import { decodePooled, transcodeBytesPooled, transcodePooled } from '../src/stream/pool/drivers.js';
import { PooledEncoder } from '../src/stream/pool/pooled-encoder.js';
import { PiscinaPool } from '../src/stream/pool/piscina-pool.js';
import { PoolError, ThreadPool, type PagePool } from '../src/stream/pool/thread-pool.js';
import { resolveSpec } from '../src/stream/page-codecs.js';
import { RamImage } from '../src/stream/ram-image.js';
import { StatsCollector } from '../src/stream/stats.js';
import { concatChunks, transcodeBytes, Transcoder } from '../src/stream/transcode.js';
import { deviceTail, page, RAM, sameBytes } from './support/build.js';
import { hasFixtureFile } from './support/fixtures.js';

const fx = loadFixture('plain');
const pools: PagePool[] = [];
afterAll(async () => {
  for (const p of pools) await p.close();
});

function decodeRam(stream: Uint8Array, options = {}) {
  const ram = new RamImage();
  const stats = new StatsCollector();
  const events: StreamEvent['type'][] = [];
  decodeAll(
    stream,
    (ev) => {
      events.push(ev.type);
      stats.handle(ev);
      if (ev.type === 'ram-blocks') ram.setBlocks(ev.blocks);
      else if (ev.type === 'page') ram.apply(ev);
    },
    options,
  );
  return { ram: ram.blocks.get('pc.ram')!, summary: stats.summary, events };
}

/** Per page record: its kind and whether its block differs from the previous page record's. */
function pageRecords(stream: Uint8Array) {
  const out: { kind: string; blockChange: boolean; continueFlag: boolean }[] = [];
  let last: string | undefined;
  decodeAll(stream, (ev) => {
    if (ev.type === 'ram-blocks') last = undefined;
    if (ev.type !== 'page') return;
    const header = ev.wireBytes - (ev.compressedBytes !== undefined ? 4 + ev.compressedBytes : 0);
    out.push({ kind: ev.kind, blockChange: ev.block.idstr !== last, continueFlag: ev.kind === 'compressed' ? header === 8 : false });
    last = ev.block.idstr;
  });
  return out;
}

describe('zlib pages in QEMU mode', () => {
  it.each([
    ['node:zlib level 1', { codec: 'zlib' as const, level: 1 }],
    ['fflate level 2', { codec: 'zlib' as const, level: 2, impl: 'portable' as const }],
  ])("%s: CONTINUE on every compressed record, a block's first page never compressed, RAM exact", (_, compress) => {
    const out = transcodeBytes(fx.stream, { compress });
    const records = pageRecords(out);
    const compressed = records.filter((r) => r.kind === 'compressed');
    expect(compressed.length).toBeGreaterThan(1000);
    expect(compressed.every((r) => r.continueFlag)).toBe(true);
    expect(records.filter((r) => r.blockChange).every((r) => r.kind !== 'compressed')).toBe(true);
    const { ram, summary } = decodeRam(out);
    expect(sameBytes(ram, fx.ram)).toBe(true);
    expect(summary.manifest).toBeNull(); // QEMU mode: nothing QEMU doesn't know
    expect(summary.commands).toEqual([]);
    expect(summary.compression.zlib.pages).toBe(compressed.length);
    // the other inflater reads it the same
    expect(sameBytes(decodeRam(out, { inflatePage: fflateZlib.inflate }).ram, fx.ram)).toBe(true);
  });

  it("zero pages stay ZERO records, as QEMU's compress threads send them", () => {
    const plain = decodeRam(transcodeBytes(fx.stream)).summary.totals;
    const z = decodeRam(transcodeBytes(fx.stream, { compress: { codec: 'zlib' } })).summary.totals;
    expect(z.zero.pages).toBe(plain.zero.pages);
    expect(z.compressed.pages + z.normal.pages).toBe(plain.normal.pages);
  });
});

describe('LZ4 extension streams', () => {
  const lz4 = transcodeBytes(fx.stream, { compress: { codec: 'lz4' } });

  it('declare lz4-pages in a manifest right after the configuration, and decode to the same RAM', () => {
    const { ram, summary, events } = decodeRam(lz4);
    expect(events.slice(0, 3)).toEqual(['header', 'configuration', 'manifest']);
    expect(summary.manifest!.extensions).toEqual([
      { name: 'lz4-pages', version: 1, required: true, params: { flag: 0x400, pageSize: 4096, acceleration: 1, compressor: 'lz4_flex' } },
    ]);
    expect(summary.totals.lz4.pages).toBeGreaterThan(1000);
    expect(summary.compression.lz4.ratio).toBeLessThan(0.5);
    expect(lz4.length).toBeLessThan(fx.stream.length);
    expect(sameBytes(ram, fx.ram)).toBe(true);
    // the portable decoder reads it the same
    const portable = decodeRam(lz4, {
      lz4Page: (src: Uint8Array, size: number) => {
        const out = new Uint8Array(size);
        lz4DecompressInto(src, out);
        return out;
      },
    });
    expect(sameBytes(portable.ram, fx.ram)).toBe(true);
  });

  it('transcode without --compress writes plain QEMU mode again, byte-identical to transcoding the original', () => {
    expect(sameBytes(transcodeBytes(lz4), transcodeBytes(fx.stream))).toBe(true);
  });

  it("acceleration 16 (migstream's liblz4 port) also round-trips", () => {
    const fast = transcodeBytes(fx.stream, { compress: { codec: 'lz4', acceleration: 16 } });
    const { ram, summary } = decodeRam(fast);
    expect(summary.manifest!.extensions[0]!.params).toMatchObject({ acceleration: 16, compressor: 'migstream-lz4' });
    expect(sameBytes(ram, fx.ram)).toBe(true);
  });
});

describe('the manifest', () => {
  /** header, configuration, [manifest payload], RAM START with MEM_SIZE, a PART with one LZ4 page. */
  function stream(manifest: Uint8Array | undefined, opts: { manifestAfterSection?: boolean; lz4Payload?: Uint8Array } = {}) {
    const parts: Uint8Array[] = [];
    const e = new StreamEncoder((c) => parts.push(c), { chunkSize: 1 << 30 });
    e.header().configuration('pc-i440fx-7.2');
    if (manifest && !opts.manifestAfterSection) e.manifest(manifest);
    e.sectionStart(RAM)
      .memSize([{ idstr: 'pc.ram', length: 2 * 4096 }])
      .ramEos()
      .footer(RAM.sectionId);
    if (manifest && opts.manifestAfterSection) e.manifest(manifest);
    e.sectionEnd(RAM.sectionId);
    const p = page((i) => i % 7);
    e.compressedPage('lz4', 'pc.ram', 4096, p, opts.lz4Payload ?? new Lz4Compressor().compress(p));
    e.ramEos().footer(RAM.sectionId).raw(deviceTail());
    e.flush();
    return concatChunks(parts);
  }
  const good = encodeManifest([lz4PagesEntry({ pageSize: 4096, acceleration: 1, compressor: 'migstream-lz4' })]);

  function failure(bytes: Uint8Array): { error: MigstreamError; pages: number } {
    let pages = 0;
    try {
      decodeAll(bytes, (ev) => {
        if (ev.type === 'page') pages++;
      });
    } catch (e) {
      expect(e).toBeInstanceOf(MigstreamError);
      return { error: e as MigstreamError, pages };
    }
    throw new Error('expected the stream to fail');
  }

  it('a stream with the manifest decodes; its page lands', () => {
    const { ram } = (() => {
      const img = new RamImage();
      decodeAll(stream(good), (ev) => (ev.type === 'ram-blocks' ? img.setBlocks(ev.blocks) : ev.type === 'page' ? img.apply(ev) : undefined));
      return { ram: img.blocks.get('pc.ram')! };
    })();
    expect(
      sameBytes(
        ram.subarray(4096),
        page((i) => i % 7),
      ),
    ).toBe(true);
  });

  it('an unknown required extension stops the reader before any page, at the manifest', () => {
    const m = encodeManifest([{ name: 'iteration-digests', version: 1, params: { algorithm: 'sha-256' } }]);
    const bytes = stream(m);
    const { error, pages } = failure(bytes);
    expect(error.code).toBe('UNSUPPORTED_EXTENSION');
    expect(error.message).toContain('"iteration-digests"');
    expect(pages).toBe(0);
    expect(bytes[error.offset]).toBe(0x08); // the command record
  });

  it('a newer version of a known extension is refused the same way', () => {
    const m = encodeManifest([{ name: 'lz4-pages', version: 2, params: { flag: 0x400, pageSize: 4096 } }]);
    expect(failure(stream(m)).error.code).toBe('UNSUPPORTED_EXTENSION');
  });

  it('a reader can be told it supports fewer extensions', () => {
    let error: unknown;
    try {
      decodeAll(stream(good), () => {}, { extensions: {} });
    } catch (e) {
      error = e;
    }
    expect((error as MigstreamError).code).toBe('UNSUPPORTED_EXTENSION');
  });

  it('an unknown extension marked required: false is ignored', () => {
    const m = encodeManifest([
      lz4PagesEntry({ pageSize: 4096, acceleration: 1, compressor: 'migstream-lz4' }),
      { name: 'provenance-note', version: 3, required: false, params: { tool: 'test' } },
    ]);
    expect(() => decodeAll(stream(m), () => {})).not.toThrow();
  });

  it.each([
    ['not msgpack', Uint8Array.of(0xc1)],
    ['not a map', encode([1, 2])],
    ['wrong format name', encode({ format: 'other', version: 1, extensions: [] })],
    ['extension without params', encode({ format: 'migstream', version: 1, extensions: [{ name: 'lz4-pages', version: 1 }] })],
    ['lz4-pages with another page size', encodeManifest([lz4PagesEntry({ pageSize: 8192, acceleration: 1, compressor: 'x' })])],
  ])('malformed manifest (%s): BAD_MANIFEST', (_, m) => {
    expect(failure(stream(m)).error.code).toBe('BAD_MANIFEST');
  });

  it('a manifest version the reader does not know: UNSUPPORTED_EXTENSION', () => {
    expect(failure(stream(encode({ format: 'migstream', version: 2, extensions: [] }))).error.code).toBe('UNSUPPORTED_EXTENSION');
  });

  it('a manifest after the first section: BAD_MANIFEST', () => {
    expect(failure(stream(good, { manifestAfterSection: true })).error.code).toBe('BAD_MANIFEST');
  });

  it("an LZ4 record in a stream that did not declare lz4-pages: QEMU's unknown-flags error", () => {
    const { error } = failure(stream(undefined));
    expect(error.code).toBe('BAD_RAM_RECORD');
    expect(error.detail).toBe('Unknown combination of migration flags: 0x400');
  });

  it('any mutation of an extension stream ends in events or a MigstreamError, never another exception', () => {
    const base = stream(good);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 6 }),
        fc.nat(base.length),
        (flips, cut) => {
          const bytes = Uint8Array.from(base.subarray(0, Math.max(cut, 9)));
          for (const [at, x] of flips) if (at < bytes.length) bytes[at]! ^= x;
          try {
            decodeAll(bytes, () => {});
          } catch (e) {
            expect(e).toBeInstanceOf(MigstreamError);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('a corrupt LZ4 payload: DECOMPRESS at the payload offset', () => {
    const bytes = stream(good, { lz4Payload: Uint8Array.of(0xf0, 1, 2) });
    const { error } = failure(bytes);
    expect(error.code).toBe('DECOMPRESS');
    expect(error.context.ramBlock).toBe('pc.ram');
    expect(bytes.subarray(error.offset - 4, error.offset)).toEqual(Uint8Array.of(0, 0, 0, 3)); // right after be32 length 3
  });
});

describe('worker pool', () => {
  const pool2 = new PiscinaPool(2);
  const pool1 = new PiscinaPool(1);
  const own2 = new ThreadPool(2);
  pools.push(pool1, pool2, own2);

  it.each([
    ['zlib level 1', { codec: 'zlib' as const, level: 1 }],
    ['lz4 acceleration 1', { codec: 'lz4' as const }],
    ['lz4 acceleration 8', { codec: 'lz4' as const, acceleration: 8 }],
  ])('%s: 1 and 2 workers (piscina, and our ThreadPool) write the bytes the synchronous transcoder writes', async (_, compress) => {
    const sync = transcodeBytes(fx.stream, { compress });
    const one = await transcodeBytesPooled(fx.stream, { compress, pool: pool1, batchPages: 16 });
    const two = await transcodeBytesPooled(fx.stream, { compress, pool: pool2, batchPages: 64 });
    const own = await transcodeBytesPooled(fx.stream, { compress, pool: own2, batchPages: 7 });
    expect(sameBytes(one, sync)).toBe(true);
    expect(sameBytes(two, sync)).toBe(true);
    expect(sameBytes(own, sync)).toBe(true);
  });

  it('an LZ4 stream decompressed on workers transcodes back to the same QEMU stream', async () => {
    const lz4 = transcodeBytes(fx.stream, { compress: { codec: 'lz4' } });
    expect(sameBytes(await transcodeBytesPooled(lz4, { pool: pool2 }), transcodeBytes(fx.stream))).toBe(true);
  });

  it.each(['compress-l1', 'compress-xbzrle'].filter((n) => hasFixtureFile(n, 'stream.bin')))(
    'real QEMU stream %s decoded on workers in landing order: RAM exact',
    async (name) => {
      const c = loadFixture(name);
      const ram = new RamImage();
      await decodePooled(c.stream, (ev) => (ev.type === 'ram-blocks' ? ram.setBlocks(ev.blocks) : ev.type === 'page' ? ram.apply(ev) : undefined), {
        pool: pool2,
        order: 'landing',
      });
      expect(sameBytes(ram.blocks.get('pc.ram')!, c.ram)).toBe(true);
    },
  );

  /** A pool whose `nth` task is sabotaged in the worker. */
  function sabotaged(inner: PagePool, nth: number, how: 'throw' | 'exit'): PagePool & { tasks: number } {
    const p = {
      size: inner.size,
      tasks: 0,
      run: (task: Parameters<PagePool['run']>[0], transfer?: ArrayBuffer[]) => inner.run(++p.tasks === nth ? { ...task, sabotage: how } : task, transfer),
      close: () => inner.close(),
    };
    return p;
  }

  describe.each([
    ['piscina', (n: number) => new PiscinaPool(n)],
    ['our ThreadPool', (n: number) => new ThreadPool(n)],
  ])('worker failures (%s)', (_, make) => {
    const lz4 = transcodeBytes(fx.stream, { compress: { codec: 'lz4' } });

    it.each([
      ['throws in', 'decompress', 'throw', /page worker threw: sabotaged decompress task/],
      ['throws in', 'compress', 'throw', /page worker threw: sabotaged compress task/],
      ['dies in', 'decompress', 'exit', /page worker failed: worker exited with code:? 7/],
      ['dies in', 'compress', 'exit', /page worker failed: worker exited with code:? 7/],
    ] as const)('a worker that %s a %s batch fails the stream with a PoolError, nothing hangs, the pool shuts down', async (_a, side, how, message) => {
      const pool = make(2);
      pools.push(pool);
      const input = side === 'decompress' ? lz4 : fx.stream;
      const compress = side === 'compress' ? { codec: 'zlib' as const } : undefined;
      const err = await transcodeBytesPooled(input, { pool: sabotaged(pool, 2, how), compress, batchPages: 8 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PoolError);
      expect((err as Error).message).toMatch(message);
      const later = await pool
        .run({ op: 'compress', spec: resolveSpec({ codec: 'zlib' }), pageSize: 4096, pages: new Uint8Array(4096) })
        .catch((e: unknown) => e);
      expect(later).toBeInstanceOf(PoolError);
    });
  });

  it("a corrupt page found by a worker is a DECOMPRESS MigstreamError at that page's offset", async () => {
    const lz4 = transcodeBytes(fx.stream, { compress: { codec: 'lz4' } });
    let at = -1;
    decodeAll(lz4, (ev) => {
      if (ev.type === 'page' && ev.kind === 'lz4' && at < 0 && ev.compressedBytes! > 20) at = ev.dataOffset;
    });
    const bad = Uint8Array.from(lz4);
    bad[at]! = 0xff; // a literal run longer than the block
    bad[at + 1]! = 0xff;
    const err = await transcodeBytesPooled(bad, { pool: pool2 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MigstreamError);
    expect((err as MigstreamError).code).toBe('DECOMPRESS');
    expect((err as MigstreamError).offset).toBe(at);
  });

  it('with a slow sink, pages in flight stay under the cap and unwritten output stays bounded', async () => {
    const spec = resolveSpec({ codec: 'zlib', level: 1 });
    let unwritten = 0;
    let maxUnwritten = 0;
    let maxInFlight = 0;
    const parts: Uint8Array[] = [];
    const slowSink = (chunk: Uint8Array) => {
      unwritten += chunk.length;
      maxUnwritten = Math.max(maxUnwritten, unwritten);
      return new Promise<void>((resolve) =>
        setTimeout(() => {
          parts.push(chunk.slice());
          unwritten -= chunk.length;
          resolve();
        }, 1),
      );
    };
    const writer = new PooledEncoder(slowSink, { spec, pool: pool2, batchPages: 16, maxInFlight: 64, chunkSize: 64 << 10 });
    const t = new Transcoder(writer, { compress: spec });
    const queue = new DecompressQueue(t.handle, { pool: pool2, batchPages: 16, maxInFlight: 64 });
    const d = new StreamDecoder(queue.handle, { decompress: 'defer' });
    const input = transcodeBytes(fx.stream, { compress: { codec: 'lz4' } }); // both sides busy
    for (let at = 0; at < input.length; at += 16384) {
      d.push(input.subarray(at, at + 16384));
      await queue.drain();
      await writer.drain();
      maxInFlight = Math.max(maxInFlight, writer.pagesInFlight + queue.pagesInFlight);
    }
    d.end();
    await queue.finish();
    await writer.finish();
    expect(maxInFlight).toBeLessThanOrEqual(128);
    // one 16 KiB input slice of LZ4 pages expands to at most ~1 MiB of records before the next drain
    expect(maxUnwritten).toBeLessThan(2 << 20);
    expect(sameBytes(concatChunks(parts), transcodeBytes(fx.stream, { compress: spec }))).toBe(true);
  });

  it('transcodePooled waits for an async sink before reading on', async () => {
    let pending = 0;
    let maxPending = 0;
    await transcodePooled(
      fx.stream,
      async () => {
        pending++;
        maxPending = Math.max(maxPending, pending);
        await new Promise((r) => setTimeout(r, 0));
        pending--;
      },
      { pool: pool2, compress: { codec: 'lz4' }, sliceBytes: 16384 },
    );
    expect(maxPending).toBeGreaterThan(0);
    expect(maxPending).toBeLessThan(64);
  });
});
