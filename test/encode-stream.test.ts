import { describe, expect, it } from 'vitest';
import '../src/node/install.js';
import { encodeDumps, type DumpEncodeOptions } from '../src/stream/dump-encoder.js';
import { liveWorkerThreads } from '../src/stream/pool/thread-pool.js';
import { RamImage } from '../src/stream/ram-image.js';
import { decodeAll } from '../src/stream/decoder.js';
import { EncodeStream } from '../src/web/encode-stream.js';
import { sameBytes } from './support/build.js';

const PAGE = 4096;

/** Three dumps of a 6 MiB block: text-like pages (compressible), a third of them changed each time. */
function dumps(): Uint8Array[] {
  const base = new Uint8Array(6 << 20);
  let x = 12345;
  for (let i = 0; i < base.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    base[i] = 97 + ((x >>> 16) % 8);
  }
  const out = [base];
  for (let d = 1; d < 3; d++) {
    const next = out[d - 1]!.slice();
    for (let p = d; p < next.length / PAGE; p += 3) next[p * PAGE + ((p * 7) % PAGE)] ^= 0x55;
    out.push(next);
  }
  return out;
}
const series = [{ idstr: 'pc.ram', dumps: dumps() }];

function encodeSync(options: DumpEncodeOptions): Uint8Array {
  const parts: Uint8Array[] = [];
  encodeDumps(series, (c) => void parts.push(c.slice()), options);
  return Buffer.concat(parts);
}

async function collect(readable: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(readable).arrayBuffer());
}

describe('EncodeStream', () => {
  const cases: [string, DumpEncodeOptions][] = [
    ['plain', {}],
    ['LZ4 pages', { compress: { codec: 'lz4' } }],
    ['XBZRLE + zlib pages + digests', { xbzrle: { cacheBytes: 4 << 20 }, compress: { codec: 'zlib', level: 1 }, digest: 'xxh64' }],
  ];
  for (const [name, options] of cases) {
    it(`${name}: the bytes of encodeDumps, without workers and on 2 workers`, async () => {
      const want = encodeSync(options);
      for (const workers of [0, 2]) {
        const es = new EncodeStream(series, { ...options, workers });
        const got = await collect(es.readable);
        expect(sameBytes(got, want)).toBe(true);
        expect(es.summary?.iterations.length).toBe(3);
      }
      // and it decodes to the last dump
      const ram = new RamImage();
      decodeAll(want, (ev) => (ev.type === 'ram-blocks' ? ram.setBlocks(ev.blocks) : ev.type === 'page' ? ram.apply(ev) : undefined));
      expect(sameBytes(ram.blocks.get('pc.ram')!, series[0]!.dumps[2]!)).toBe(true);
    }, 60_000);
  }

  it('encodes only as the reader pulls: with no reader, at most highWaterMark plus one step is produced', async () => {
    const highWaterMark = 256 << 10;
    const es = new EncodeStream(series, { highWaterMark });
    const reader = es.readable.getReader();
    await reader.read();
    await new Promise((r) => setTimeout(r, 300)); // the stream fills up to its high-water mark, then waits
    const produced = es.encodedBytes;
    expect(es.queuedBytes).toBeGreaterThan(0);
    expect(es.queuedBytes).toBeLessThanOrEqual(produced);
    expect(produced).toBeLessThanOrEqual(highWaterMark + (2 << 20)); // one step is a few hundred records
    expect(produced).toBeLessThan(encodeSync({}).length / 4);
    expect(es.summary).toBeUndefined();
    await reader.cancel();
  });

  it('an abort mid-stream errors the reader with an AbortError and terminates the workers', async () => {
    const ac = new AbortController();
    const es = new EncodeStream(series, { workers: 2, compress: { codec: 'lz4' }, signal: ac.signal, highWaterMark: 64 << 10 });
    const reader = es.readable.getReader();
    await reader.read();
    expect(liveWorkerThreads).toBe(2);
    ac.abort();
    const e = await reader.read().then(
      () => reader.read(),
      (x: unknown) => x,
    );
    expect((e as Error).name).toBe('AbortError');
    for (let i = 0; i < 100 && liveWorkerThreads > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(liveWorkerThreads).toBe(0);
  });
});
