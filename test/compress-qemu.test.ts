import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadFixture, runIncoming } from '../fixtures/qemu/lib.mjs';
import { fflateZlib } from '../src/codec/zlib-page.js';
import { decodeAll } from '../src/stream/decoder.js';
import { transcodeBytesPooled } from '../src/stream/pool/drivers.js';
import { ThreadPool } from '../src/stream/pool/thread-pool.js';
import { concatChunks, transcodeBytes } from '../src/stream/transcode.js';
import { encodeDumps, readTemplate } from '../src/stream/dump-encoder.js';
import { dumpSeries } from './support/dumps.js';
import { nodeZlib } from '../src/stream/zlib-node.js';
import { sameBytes } from './support/build.js';
import { hasFixtureFile } from './support/fixtures.js';
import { qemuGate } from './support/qemu.js';

const gate = qemuGate();
const work = mkdtempSync(join(tmpdir(), 'migstream-compress-qemu-'));
const pool = new ThreadPool(2);
afterAll(async () => {
  await pool.close();
  rmSync(work, { recursive: true, force: true });
});

/** QEMU's compressed records in a fixture: their zlib payloads. */
function compressedPayloads(stream: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  decodeAll(
    stream,
    (ev) => {
      if (ev.type === 'page' && ev.kind === 'compressed') out.push(stream.subarray(ev.dataOffset, ev.dataOffset + ev.compressedBytes!));
    },
    { decompress: 'defer' },
  );
  return out;
}

describe.each([
  ['compress-l1', 1],
  ['compress-l9', 9],
])("QEMU's own compressed pages (%s)", (name, level) => {
  it.skipIf(!hasFixtureFile(name, 'stream.bin'))(
    `every record has our level-${level} header and inflates to a page; fflate agrees; count node:zlib's identical records`,
    () => {
      const payloads = compressedPayloads(loadFixture(name).stream);
      expect(payloads.length).toBeGreaterThan(1000);
      let identical = 0;
      const header = Buffer.from(nodeZlib.deflate(new Uint8Array(4096), level).subarray(0, 2)).toString('hex');
      let agree = 0;
      payloads.forEach((z, i) => {
        expect(Buffer.from(z.subarray(0, 2)).toString('hex')).toBe(header);
        const page = nodeZlib.inflate(z, 4096);
        expect(page.length).toBe(4096);
        if (i % 8 === 0 && sameBytes(fflateZlib.inflate(z, 4096), page)) agree++; // fflate is slow: every 8th record
        if (i % 4 === 0 && sameBytes(nodeZlib.deflate(page, level), z)) identical++; // every 4th: each sync zlib call sets up a stream
      });
      expect(agree).toBe(Math.ceil(payloads.length / 8));
      // Node's bundled zlib (Chromium's) is not QEMU's system zlib: most records match byte for byte, not all
      console.info(
        `${name}: node:zlib ${process.versions.zlib} re-deflates ${identical} of ${Math.ceil(payloads.length / 4)} sampled QEMU records byte for byte`,
      );
      expect(identical).toBeGreaterThan(0);
    },
  );
});

describe.skipIf(!gate.run)('real QEMU 7.2 (compress capability) loads our compressed streams', () => {
  const fx = loadFixture('plain');
  const compressDest = { capabilities: { compress: true }, parameters: { 'decompress-threads': 2 } };

  async function load(stream: Uint8Array, tag: string, dest: { capabilities?: Record<string, boolean>; parameters?: Record<string, number> } = {}) {
    const streamPath = join(work, `${tag}.stream`);
    writeFileSync(streamPath, stream);
    const r = await runIncoming({ config: fx.config, streamPath, workDir: join(work, tag), timeoutMs: 90_000, ...dest });
    expect(r.queryMigrate.status).toBe('completed');
    return readFileSync(r.ramPath);
  }

  it('transcode --compress zlib --level 1 on 1 and 2 workers: identical bytes, loaded byte-exact', async () => {
    const one = await transcodeBytesPooled(fx.stream, { compress: { codec: 'zlib', level: 1 }, workers: 1 });
    const two = await transcodeBytesPooled(fx.stream, { compress: { codec: 'zlib', level: 1 }, pool });
    expect(sameBytes(one, two)).toBe(true);
    expect(sameBytes(await load(two, 'zlib1', compressDest), fx.ram)).toBe(true);
  });

  it('fflate (the portable path) at level 9: loaded byte-exact', async () => {
    const out = transcodeBytes(fx.stream, { compress: { codec: 'zlib', level: 9, impl: 'portable' } });
    expect(sameBytes(await load(out, 'fflate9', compressDest), fx.ram)).toBe(true);
  });

  it('encode --dumps --template --compress zlib: loaded with RAM equal to the last dump', async () => {
    const dumps = dumpSeries(new Uint8Array(fx.ram), 3);
    const parts: Uint8Array[] = [];
    encodeDumps([{ idstr: 'pc.ram', dumps }], (c) => parts.push(c), { template: readTemplate(fx.stream), compress: { codec: 'zlib', level: 3 } });
    expect(sameBytes(await load(concatChunks(parts), 'dumps-zlib', compressDest), dumps.at(-1)!)).toBe(true);
  });

  it('QEMU stream → LZ4 extension stream (smaller) → QEMU stream: loaded byte-exact', async () => {
    const lz4 = await transcodeBytesPooled(fx.stream, { compress: { codec: 'lz4' }, pool });
    expect(lz4.length).toBeLessThan(fx.stream.length);
    const back = await transcodeBytesPooled(lz4, { pool });
    expect(sameBytes(await load(back, 'lz4-back'), fx.ram)).toBe(true);
  });

  it.skipIf(!hasFixtureFile('compress-l9', 'stream.bin'))(
    "QEMU's compress-l9 stream, decompressed on workers and recompressed at level 1: loaded byte-exact",
    async () => {
      const c = loadFixture('compress-l9');
      const out = await transcodeBytesPooled(c.stream, { compress: { codec: 'zlib', level: 1 }, pool });
      const streamPath = join(work, 'l9-l1.stream');
      writeFileSync(streamPath, out);
      const r = await runIncoming({ config: c.config, streamPath, workDir: join(work, 'l9-l1'), timeoutMs: 90_000 });
      expect(sameBytes(readFileSync(r.ramPath), c.ram)).toBe(true);
    },
  );
});
