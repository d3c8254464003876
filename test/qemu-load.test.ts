import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadFixture, runIncoming } from '../fixtures/qemu/lib.mjs';
import { decodeAll } from '../src/stream/decoder.js';
import { encodeDumps, readTemplate } from '../src/stream/dump-encoder.js';
import { WriteLogDiskSource } from '../src/stream/disk-source.js';
import { concatChunks, transcodeBytes } from '../src/stream/transcode.js';
import { encodeDumpsPooled } from '../src/stream/pool/drivers.js';
import { dumpSeries } from './support/dumps.js';
import { sameBytes } from './support/build.js';
import { fixtureNames } from './support/fixtures.js';
import { qemuGate } from './support/qemu.js';

const gate = qemuGate();
const work = mkdtempSync(join(tmpdir(), 'migstream-qemu-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

// Real QEMU 7.2 is the authority: it must load what we write, and its RAM must then equal the source's.
describe.skipIf(!gate.run)('real QEMU 7.2 loads `transcode` output', () => {
  it.each(fixtureNames())('%s: destination RAM and disks equal the source', async (name) => {
    const fx = loadFixture(name);
    const streamPath = join(work, `${name}.plain.stream`);
    const out = transcodeBytes(fx.stream);
    writeFileSync(streamPath, out);
    const r = await runIncoming({ config: fx.config, streamPath, workDir: join(work, name), timeoutMs: 90_000 });
    expect(r.queryMigrate.status).toBe('completed');
    expect(sameBytes(readFileSync(r.ramPath), fx.ram)).toBe(true);
    for (const [device, truth] of Object.entries(fx.disks)) {
      // QEMU 7.2 writes the last 1 MiB chunk whole, so the destination disk is rounded up to 1 MiB
      const dest = readFileSync(r.diskPaths[device]!);
      expect(sameBytes(dest.subarray(0, truth.length), truth), device).toBe(true);
      expect(dest.subarray(truth.length).every((b) => b === 0)).toBe(true);
    }
  });

  it('catches a single wrong byte (the comparison can fail)', async () => {
    const fx = loadFixture('plain');
    const out = transcodeBytes(fx.stream);
    // the last PAGE record before the device state: flip a byte of its payload
    const at = Buffer.from(out).lastIndexOf(Buffer.from([0x7e, 0, 0, 0, 2])) - 8 - 100;
    out[at]! ^= 0xff;
    const streamPath = join(work, 'flipped.stream');
    writeFileSync(streamPath, out);
    const r = await runIncoming({ config: fx.config, streamPath, workDir: join(work, 'flipped'), timeoutMs: 90_000 });
    expect(sameBytes(readFileSync(r.ramPath), fx.ram)).toBe(false);
  });

  const xbzrleCases = fixtureNames()
    .filter((n) => !n.startsWith('block'))
    .flatMap((name) => (['lru', 'qemu'] as const).map((policy) => [name, policy] as const));
  it.each(xbzrleCases)('%s: `transcode --xbzrle --cache-policy %s` loads with RAM equal to the source', async (name, policy) => {
    const fx = loadFixture(name);
    const streamPath = join(work, `${name}.xbzrle-${policy}.stream`);
    const out = transcodeBytes(fx.stream, { xbzrle: { cacheBytes: 4 << 20, policy } });
    writeFileSync(streamPath, out);
    const r = await runIncoming({ config: fx.config, streamPath, workDir: join(work, `${name}-x-${policy}`), timeoutMs: 90_000 });
    expect(sameBytes(readFileSync(r.ramPath), fx.ram)).toBe(true);
    // the fixtures that re-send pages do go out as XBZRLE records, so this load proves the deltas
    let deltas = 0;
    decodeAll(out, (ev) => {
      if (ev.type === 'page' && ev.kind === 'xbzrle') deltas++;
    });
    if (name.startsWith('xbzrle') || name === 'compress-xbzrle') expect(deltas).toBeGreaterThan(0);
  });

  it('`encode --dumps --template --xbzrle` loads with RAM equal to the last dump', async () => {
    const fx = loadFixture('plain');
    const dumps = dumpSeries(new Uint8Array(fx.ram), 4);
    const parts: Uint8Array[] = [];
    encodeDumps([{ idstr: 'pc.ram', dumps }], (c) => parts.push(c), {
      template: readTemplate(fx.stream),
      xbzrle: { cacheBytes: 1 << 20, policy: 'qemu' },
    });
    const streamPath = join(work, 'dumps.stream');
    writeFileSync(streamPath, concatChunks(parts));
    const r = await runIncoming({ config: fx.config, streamPath, workDir: join(work, 'dumps'), timeoutMs: 90_000 });
    expect(sameBytes(readFileSync(r.ramPath), dumps.at(-1)!)).toBe(true);
  });

  it('block: a --chunk 64KiB stream transcoded back to QEMU chunks loads with the disk byte-exact', async () => {
    const fx = loadFixture('block');
    const size = fx.config.disk!.size;
    const variable = transcodeBytes(fx.stream, { blockChunk: 65536, diskSizes: { 'ide0-hd1': size } });
    const streamPath = join(work, 'block-back.stream');
    writeFileSync(streamPath, transcodeBytes(variable));
    const r = await runIncoming({ config: fx.config, streamPath, workDir: join(work, 'block-back'), timeoutMs: 90_000 });
    expect(sameBytes(readFileSync(r.ramPath), fx.ram)).toBe(true);
    expect(sameBytes(readFileSync(r.diskPaths['ide0-hd1']!).subarray(0, size), fx.disks['ide0-hd1']!)).toBe(true);
  });

  it('block: our own block-migration encoder (bulk + dirty chunks from a write log) loads byte-exact', async () => {
    const fx = loadFixture('block-zero');
    const size = fx.config.disk!.size;
    const image = new Uint8Array(fx.disks['ide0-hd1']!);
    const final = image.slice();
    const groups = [
      [{ offset: 3 * 2 ** 20 + 4096, data: new Uint8Array(8192).fill(0x33) }],
      [
        { offset: size - 1000, data: new Uint8Array(1000).fill(0x44) },
        { offset: 0, data: new Uint8Array(512).fill(0x55) },
      ],
    ];
    for (const g of groups) for (const w of g) final.set(w.data, w.offset);
    const dumps = dumpSeries(new Uint8Array(fx.ram), 3);
    const parts: Uint8Array[] = [];
    encodeDumps([{ idstr: 'pc.ram', dumps }], (c) => parts.push(c), {
      template: readTemplate(fx.stream),
      disks: [new WriteLogDiskSource('ide0-hd1', image, groups)],
      zeroBlocks: true,
    });
    const streamPath = join(work, 'block-encode.stream');
    writeFileSync(streamPath, concatChunks(parts));
    const r = await runIncoming({ config: fx.config, streamPath, workDir: join(work, 'block-encode'), timeoutMs: 90_000 });
    expect(sameBytes(readFileSync(r.ramPath), dumps.at(-1)!)).toBe(true);
    expect(sameBytes(readFileSync(r.diskPaths['ide0-hd1']!).subarray(0, size), final)).toBe(true);
  });
  it('block: our encoder on 2 workers with LZ4-compressed 16 KiB chunks and LZ4 pages, transcoded back to QEMU mode, loads byte-exact', async () => {
    const fx = loadFixture('block');
    const size = fx.config.disk!.size;
    const image = new Uint8Array(fx.disks['ide0-hd1']!);
    const final = image.slice();
    const groups = [[{ offset: 2 * 2 ** 20 + 12288, data: new Uint8Array(20000).fill(0x61) }], [{ offset: 512, data: new Uint8Array(4096).fill(0x62) }]];
    for (const g of groups) for (const w of g) final.set(w.data, w.offset);
    const dumps = dumpSeries(new Uint8Array(fx.ram), 3);
    const parts: Uint8Array[] = [];
    await encodeDumpsPooled([{ idstr: 'pc.ram', dumps }], (c) => void parts.push(c.slice()), {
      template: readTemplate(fx.stream),
      disks: [new WriteLogDiskSource('ide0-hd1', image, groups)],
      blockChunkSize: 16384,
      chunkCompress: { codec: 'lz4' },
      compress: { codec: 'lz4' },
      workers: 2,
    });
    const packed = concatChunks(parts);
    const streamPath = join(work, 'block-lz4-chunks.stream');
    writeFileSync(streamPath, transcodeBytes(packed, { diskSizes: { 'ide0-hd1': size } }));
    const r = await runIncoming({ config: fx.config, streamPath, workDir: join(work, 'block-lz4-chunks'), timeoutMs: 90_000 });
    expect(sameBytes(readFileSync(r.ramPath), dumps.at(-1)!)).toBe(true);
    expect(sameBytes(readFileSync(r.diskPaths['ide0-hd1']!).subarray(0, size), final)).toBe(true);
  });
});
