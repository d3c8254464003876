import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadFixture, runIncoming } from '../fixtures/qemu/lib.mjs';
import '../src/node/install.js';
import { MigstreamError } from '../src/codec/errors.js';
import { cloneEvent } from '../src/stream/clone-event.js';
import { decodeAll, StreamDecoder } from '../src/stream/decoder.js';
import type { StreamEvent } from '../src/stream/events.js';
import { liveWorkerThreads } from '../src/stream/pool/thread-pool.js';
import { RamImage } from '../src/stream/ram-image.js';
import { transcodeBytes, type TranscodeOptions } from '../src/stream/transcode.js';
import { DecodeStream, decodeEvents } from '../src/web/decode-stream.js';
import { TranscodeStream, type TranscodeStreamOptions } from '../src/web/transcode-stream.js';
import { runCli, requireBuiltCli } from './support/cli.js';
import { sameBytes } from './support/build.js';
import { qemuGate } from './support/qemu.js';

requireBuiltCli();
const gate = qemuGate();
const work = mkdtempSync(join(tmpdir(), 'migstream-surface-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A ReadableStream over `bytes` in pieces of `size`. */
function pieces(bytes: Uint8Array, size: number): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(c) {
      if (at >= bytes.length) return c.close();
      c.enqueue(bytes.subarray(at, Math.min(at + size, bytes.length)));
      at += size;
    },
  });
}

async function collect(readable: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(readable).arrayBuffer());
}

async function transcodeStream(input: Uint8Array, options: TranscodeStreamOptions, size = 100_003): Promise<Uint8Array> {
  return collect(pieces(input, size).pipeThrough(new TranscodeStream(options)));
}

const xbzrleLz4: TranscodeOptions = { xbzrle: { cacheBytes: 4 << 20, policy: 'lru' }, compress: { codec: 'lz4' } };

describe('TranscodeStream', () => {
  it.each([
    ['plain', {}],
    ['xbzrle-hit', { xbzrle: { cacheBytes: 1 << 20, policy: 'qemu' } }],
    ['compress-l1', { xbzrle: { cacheBytes: 4 << 20, policy: 'lru' } }],
    ['xbzrle-miss', { compress: { codec: 'zlib', level: 1 } }],
    ['block', { blockChunk: 65536, chunkCompress: { codec: 'lz4' } }],
  ] as [string, TranscodeOptions][])('%s %j: the same bytes as transcodeBytes, in any input pieces', async (name, options) => {
    const fx = loadFixture(name);
    const want = transcodeBytes(fx.stream, options);
    expect(sameBytes(await transcodeStream(fx.stream, options), want)).toBe(true);
    if (name !== 'compress-l1') expect(sameBytes(await transcodeStream(fx.stream, options, 4093), want)).toBe(true); // (slow under load: 71k zlib pages)
  });

  it("xbzrle + LZ4 on 2 workers, and back to QEMU mode: the CLI's bytes (sync and 2 workers); QEMU 7.2 loads the result with RAM byte-exact", async () => {
    const fx = loadFixture('plain');
    const inPath = join(work, 'in.stream');
    writeFileSync(inPath, fx.stream);
    const there = await transcodeStream(fx.stream, { ...xbzrleLz4, workers: 2 });
    for (const workers of ['0', '2']) {
      const cli = runCli(['transcode', inPath, '-', '--xbzrle=4MiB', '--compress', 'lz4', '--workers', workers]);
      expect(cli.code, cli.stderr).toBe(0);
      expect(sameBytes(there, cli.stdoutBytes), `--workers ${workers}`).toBe(true);
    }
    expect(sameBytes(there, transcodeBytes(fx.stream, xbzrleLz4))).toBe(true);
    const thereDecoded = transcodeBytes(there); // the LZ4 stream decodes
    const back = await collect(
      pieces(there, 65536)
        .pipeThrough(new TranscodeStream({ workers: 2 }))
        .pipeThrough(new TranscodeStream({})),
    );
    expect(sameBytes(back, thereDecoded)).toBe(true);
    const therePath = join(work, 'there.stream');
    writeFileSync(therePath, there);
    const cliBack = runCli(['transcode', therePath, '-', '--workers', '2']);
    expect(cliBack.code, cliBack.stderr).toBe(0);
    expect(sameBytes(back, cliBack.stdoutBytes)).toBe(true);
    const backPath = join(work, 'back.stream');
    writeFileSync(backPath, back);
    if (!gate.run) return;
    const r = await runIncoming({ config: fx.config, streamPath: backPath, workDir: join(work, 'qemu'), timeoutMs: 90_000 });
    expect(r.queryMigrate.status).toBe('completed');
    expect(sameBytes(readFileSync(r.ramPath), fx.ram)).toBe(true);
  }, 180_000);
});

function ramSha(events: Iterable<StreamEvent>): string {
  const ram = new RamImage();
  for (const ev of events) {
    if (ev.type === 'ram-blocks') ram.setBlocks(ev.blocks);
    else if (ev.type === 'page') ram.apply(ev);
  }
  return createHash('sha256').update(ram.blocks.get('pc.ram')!).digest('hex');
}

describe('DecodeStream and decodeEvents', () => {
  it.each(['plain', 'xbzrle-hit', 'compress-l1'])("%s: events equal the decoder's, and they rebuild the source RAM (sync and 2 workers)", async (name) => {
    const fx = loadFixture(name);
    const want: StreamEvent[] = [];
    // (compress-l1: 71k events; checked by RAM only, against the ground truth, to keep CI fast)
    if (name !== 'compress-l1') decodeAll(fx.stream, (ev) => want.push(cloneEvent(ev)));
    // device state comes in pieces as it arrives: compare it joined; bytes compare by hash (toEqual over 60 MB of pages is slow)
    const joined = (events: StreamEvent[]) => {
      const out = events
        .filter((ev) => ev.type !== 'device-state')
        .map((ev) => JSON.stringify(ev, (_, v: unknown) => (v instanceof Uint8Array ? createHash('sha1').update(v).digest('hex') : v)));
      const state = Buffer.concat(events.flatMap((ev) => (ev.type === 'device-state' ? [ev.bytes] : [])));
      return { out, state };
    };
    const truth = createHash('sha256').update(fx.ram).digest('hex');
    for (const workers of name === 'compress-l1' ? [2] : [0, 2]) {
      // (compress-l1: 71k events, its inline path is the decoder's own; the workers' path is the one to check here)
      const got: StreamEvent[] = [];
      for await (const ev of decodeEvents(pieces(fx.stream, 65_521), { workers })) {
        await null; // events stay valid after an await
        got.push(ev);
      }
      expect(got.length).toBeGreaterThan(1000);
      expect(ramSha(got)).toBe(truth);
      if (name === 'compress-l1') continue;
      const g = joined(got);
      const w = joined(want);
      expect(g.out.length).toBe(w.out.length);
      expect(g.out).toEqual(w.out);
      expect(sameBytes(g.state, w.state)).toBe(true);
    }
    if (name === 'compress-l1') return;
    const viaStream: StreamEvent[] = [];
    await pieces(fx.stream, 8192)
      .pipeThrough(new DecodeStream())
      .pipeTo(new WritableStream({ write: (ev) => void viaStream.push(ev) }));
    expect(ramSha(viaStream)).toBe(truth);
  });

  it('decodeEvents takes an async iterable; breaking out stops reading the source', async () => {
    const fx = loadFixture('plain');
    let served = 0;
    async function* source() {
      for (let at = 0; at < fx.stream.length; at += 65536) {
        served++;
        yield fx.stream.subarray(at, at + 65536);
      }
    }
    let n = 0;
    for await (const ev of decodeEvents(source(), { highWaterMark: 65536 })) {
      if (ev.type === 'page' && ++n === 100) break;
    }
    expect(n).toBe(100);
    expect(served).toBeLessThan(fx.stream.length / 65536 / 4);
  });

  it('a bad stream throws MigstreamError from the loop, at its byte', async () => {
    const fx = loadFixture('plain');
    const bad = new Uint8Array(fx.stream.subarray(0, 100_000)); // a copy (Buffer's slice is a view)
    bad[4] = 9; // version
    const e = await (async () => {
      for await (const _ of decodeEvents([bad])) void _;
    })().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(MigstreamError);
    expect((e as MigstreamError).code).toBe('BAD_VERSION');
    expect((e as MigstreamError).offset).toBe(4);
    const truncated = await (async () => {
      for await (const _ of decodeEvents([fx.stream.subarray(0, 100_000)])) void _;
    })().catch((x: unknown) => x);
    expect((truncated as MigstreamError).code).toBe('TRUNCATED');
  });
});

describe('backpressure', () => {
  it.each([0, 2])(
    'a slow reader (64 KiB at a time, with pauses) keeps the bytes inside under bufferBound (workers %i)',
    async (workers) => {
      // without workers: 21 MB of plain records out; with workers: QEMU's zlib pages decompress and LZ4 pages
      // compress on the pool (7.9 MB out)
      const fx = loadFixture(workers ? 'compress-l1' : 'plain');
      const options = { workers, ...(workers ? { compress: { codec: 'lz4' as const }, highWaterMark: 256 << 10, maxInFlight: 64 } : {}) };
      const ts = new TranscodeStream(options);
      const w = ts.writable.getWriter();
      const writing = w.write(fx.stream).then(() => w.close()); // one large write: only the stream's own backpressure bounds it
      const reader = ts.readable.getReader();
      const parts: Uint8Array[] = [];
      let maxInside = 0;
      let pending: Uint8Array | undefined;
      for (let reads = 0; ; reads++) {
        // take exactly 64 KiB per step
        let want = 65536;
        while (want > 0) {
          if (!pending || pending.length === 0) {
            const r = await reader.read();
            if (r.done) break;
            pending = r.value;
          }
          const take = pending.subarray(0, want);
          parts.push(take);
          pending = pending.subarray(take.length);
          want -= take.length;
        }
        maxInside = Math.max(maxInside, ts.bufferedBytes);
        if (want > 0) break;
        if (reads % 8 === 0) await new Promise((r) => setTimeout(r, 5));
        else await new Promise((r) => setImmediate(r));
      }
      await writing;
      const out = new Uint8Array(await new Blob(parts).arrayBuffer());
      expect(sameBytes(out, transcodeBytes(fx.stream, options))).toBe(true);
      // docs/embedding.md: highWaterMark + 1.3125 MiB (one record's output) + with workers 2 × (maxInFlight + 256) × (pageSize + 64)
      expect(ts.bufferBound).toBe(workers ? 262_144 + 1_376_256 + 2 * (64 + 256) * 4160 : 1_048_576 + 1_376_256);
      expect(maxInside).toBeLessThanOrEqual(ts.bufferBound);
      expect(ts.peakQueuedBytes).toBeLessThanOrEqual(ts.bufferBound);
      expect(out.length).toBeGreaterThan(1.2 * ts.bufferBound); // the bound means something: much of the output waited for the reader
    },
    60_000,
  );

  it('without a reader, the writer waits: the stream reads no more input than it can hold', async () => {
    const fx = loadFixture('compress-l1');
    const ts = new TranscodeStream({});
    const w = ts.writable.getWriter();
    let written = false;
    const writing = w.write(fx.stream).then(
      () => (written = true),
      (e: unknown) => e,
    );
    await new Promise((r) => setTimeout(r, 300));
    expect(written).toBe(false);
    expect(ts.bufferedBytes).toBeGreaterThan(0);
    expect(ts.bufferedBytes).toBeLessThanOrEqual(ts.bufferBound);
    await w.abort(new Error('done'));
    expect(((await writing) as Error).message).toBe('done'); // the write in flight ends with the abort, not when a reader comes
  });
});

describe('cancellation and errors', () => {
  it('an abort mid-stream rejects with an AbortError, leaves no worker thread alive, promptly', async () => {
    const fx = loadFixture('compress-l1');
    const ac = new AbortController();
    const ts = new TranscodeStream({ workers: 2, compress: { codec: 'lz4' }, signal: ac.signal });
    let read = 0;
    let abortedAt = 0;
    const piping = pieces(fx.stream, 65536)
      .pipeThrough(ts)
      .pipeTo(
        new WritableStream({
          write(c) {
            read += c.length;
            if (read > 2 << 20 && !ac.signal.aborted) {
              abortedAt = performance.now();
              ac.abort();
            }
          },
        }),
      );
    expect(liveWorkerThreads).toBe(2);
    const e = await piping.catch((x: unknown) => x);
    expect((e as Error).name).toBe('AbortError');
    for (let i = 0; i < 100 && liveWorkerThreads > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(liveWorkerThreads).toBe(0);
    expect(abortedAt).toBeGreaterThan(0);
    expect(performance.now() - abortedAt).toBeLessThan(2000); // generous on a loaded machine: it takes milliseconds
    expect(read).toBeLessThan(fx.stream.length * 3); // stopped long before the 21 MB of output
  });

  it('an already aborted signal fails both sides at once', async () => {
    const ts = new TranscodeStream({ signal: AbortSignal.abort() });
    const e = await ts.readable
      .getReader()
      .read()
      .catch((x: unknown) => x);
    expect((e as Error).name).toBe('AbortError');
  });

  it('a bug in a RAM store surfaces as INTERNAL, not as a bad stream', async () => {
    const fx = loadFixture('plain');
    const ram = new RamImage();
    const broken = Object.assign(Object.create(RamImage.prototype) as RamImage, ram, {
      apply() {
        throw new TypeError('store bug');
      },
    });
    const e = await transcodeStream(fx.stream, { ramStore: broken }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(MigstreamError);
    expect((e as MigstreamError).code).toBe('INTERNAL');
    expect((e as MigstreamError as { cause?: Error }).cause?.message).toBe('store bug');
    const d = new StreamDecoder(() => {
      throw new RangeError('handler bug');
    });
    expect(() => d.push(fx.stream.subarray(0, 64))).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
  });

  it('a reader that cancels fails the writer with OUTPUT_CLOSED and closes the pool', async () => {
    const fx = loadFixture('compress-l1');
    const ts = new TranscodeStream({ workers: 2 });
    const w = ts.writable.getWriter();
    const writing = w.write(fx.stream).catch((x: unknown) => x);
    const reader = ts.readable.getReader();
    await reader.read();
    await reader.cancel('enough');
    const e = await writing;
    expect((e as MigstreamError).code).toBe('OUTPUT_CLOSED');
    for (let i = 0; i < 100 && liveWorkerThreads > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(liveWorkerThreads).toBe(0);
  });
});
