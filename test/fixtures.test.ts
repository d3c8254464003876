import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CONFIGS, loadFixture } from '../fixtures/qemu/lib.mjs';
import { extractFile, inspectFile } from '../src/cli/commands.js';
import { StreamDecoder } from '../src/stream/decoder.js';
import { RamImage } from '../src/stream/ram-image.js';
import { transcodeBytes } from '../src/stream/transcode.js';
import { decodeRam, sameBytes } from './support/build.js';
import { fixtureNames } from './support/fixtures.js';

const names = fixtureNames();
const work = mkdtempSync(join(tmpdir(), 'migstream-fixtures-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

it('has every configuration of the fixture script committed', () => {
  expect(names).toEqual(CONFIGS.map((c) => c.name).sort());
});

describe.each(names)('real QEMU 7.2 fixture %s', (name) => {
  const fx = loadFixture(name);
  const ignoreShared = fx.config.capabilities['x-ignore-shared'] === true;

  it('decodes to the paused source RAM byte for byte', () => {
    const { ram, stats } = decodeRam(fx.stream);
    const s = stats.summary;
    expect(s.machine).toBe('pc-i440fx-7.2');
    expect(s.ramBlocks.find((b) => b.idstr === 'pc.ram')?.length).toBe(fx.ram.length);
    if (ignoreShared) {
      // pc.ram is shared, so QEMU does not send it: no page may name it
      expect(s.capabilities).toEqual(['x-ignore-shared']);
      expect(s.ramBlocks.every((b) => typeof b.mrAddr === 'number')).toBe(true);
      expect(ram.blocks.get('pc.ram')!.some((b) => b !== 0)).toBe(false);
    } else {
      expect(sameBytes(ram.blocks.get('pc.ram')!, fx.ram)).toBe(true);
    }
  });

  it('extracts RAMBlocks and disks to files equal to the ground truth', async () => {
    const dir = join(work, name);
    const input = join(work, `${name}.stream`);
    writeFileSync(input, fx.stream);
    const sizes = fx.config.disk ? { [fx.config.disk.device]: fx.config.disk.size } : {};
    const r = await extractFile(input, dir, sizes);
    if (!ignoreShared) expect(sameBytes(readFileSync(join(dir, 'pc.ram.bin')), fx.ram)).toBe(true);
    expect(readFileSync(join(dir, 'pc.ram.bin')).length).toBe(fx.ram.length);
    expect(Object.keys(r.diskFiles).sort()).toEqual(Object.keys(fx.disks).sort());
    for (const [device, truth] of Object.entries(fx.disks)) {
      expect(sameBytes(readFileSync(r.diskFiles[device]!), truth), device).toBe(true);
    }
    const devices = JSON.parse(readFileSync(join(dir, 'devices.json'), 'utf8'));
    expect(devices.ramBlocks.map((b: { file: string }) => b.file)).toContain('0000%3A00%3A02.0%2Fvga.vram.bin');
  });

  it("reconciles inspect's record counts with QEMU's query-migrate", async () => {
    const input = join(work, `${name}.inspect.stream`);
    writeFileSync(input, fx.stream);
    const s = await inspectFile(input);
    const q = fx.queryMigrate;
    const t = s.totals;
    expect(s.streamBytes).toBe(fx.stream.length);
    // duplicate: ZERO records, from the migration thread and the compression threads alike; with
    // compression 7.2 over-counts (a reused thread's stale zero-page flag counts again), as it does
    // for compression.pages
    if (q.compression) {
      expect(t.zero.pages).toBeLessThanOrEqual(q.ram.duplicate);
      expect(q.ram.duplicate - t.zero.pages).toBeLessThan(0.03 * q.ram.duplicate);
    } else {
      expect(t.zero.pages).toBe(q.ram.duplicate);
    }
    // normal: PAGE records (cache misses and XBZRLE overflows go out as PAGE and count here too)
    expect(t.normal.pages).toBe(q.ram.normal);
    expect(q.ram['normal-bytes']).toBe(q.ram.normal * 4096);
    const x = q['xbzrle-cache'];
    if (x) {
      // QEMU's xbzrle pages = cache hits: records + overflows + unchanged pages (which send nothing)
      expect(t.xbzrle.pages).toBeLessThanOrEqual(x.pages - x.overflow);
      // QEMU's xbzrle bytes = record bytes without the 8-byte header word, overflows at 4096 each
      expect(t.xbzrle.bytes - 8 * t.xbzrle.pages + 4096 * x.overflow).toBe(x.bytes);
    } else {
      expect(t.xbzrle.pages).toBe(0);
    }
    if (q.compression) {
      // 7.2 over-counts compressed pages (an idle thread's empty result counts too)
      expect(t.compressed.pages).toBeGreaterThan(0);
      expect(t.compressed.pages).toBeLessThanOrEqual(q.compression.pages);
    } else {
      expect(t.compressed.pages).toBe(0);
    }
    if (fx.config.blk) {
      const device = fx.config.disk!.device;
      const d = s.blockDevices.find((b) => b.device === device)!;
      expect(d.extent).toBeGreaterThanOrEqual(fx.config.disk!.size);
      expect(s.blockProgress).toBe(100);
      if (fx.config.capabilities['zero-blocks']) expect(d.zeroChunks).toBeGreaterThan(0);
      else expect(d.zeroChunks).toBe(0);
    }
    expect(s.vmdesc).toBe(name !== 'suppress-vmdesc');
    expect(s.devices?.length).toBeGreaterThan(10);
    expect(s.devices?.map((d) => d.idstr)).toContain('0000:00:02.0/vga');
  });

  it('gives the same RAM for small random chunks as for one buffer', () => {
    const { ram } = decodeRam(fx.stream);
    const chunked = new RamImage();
    const d = new StreamDecoder((ev) => {
      if (ev.type === 'ram-blocks') chunked.setBlocks(ev.blocks);
      else if (ev.type === 'page') chunked.apply(ev);
    });
    let seed = 12345;
    for (let i = 0; i < fx.stream.length; ) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      const n = 1 + (seed % 9000);
      d.push(fx.stream.subarray(i, i + n));
      i += n;
    }
    d.end();
    for (const [id, img] of ram.blocks) expect(sameBytes(chunked.blocks.get(id)!, img), id).toBe(true);
  });

  it('transcodes to plain records that decode to the same RAM', () => {
    const out = transcodeBytes(fx.stream);
    const a = decodeRam(fx.stream);
    const b = decodeRam(out);
    for (const [id, img] of a.ram.blocks) expect(sameBytes(b.ram.blocks.get(id)!, img), id).toBe(true);
    expect(b.stats.summary.totals.xbzrle.pages + b.stats.summary.totals.compressed.pages).toBe(0);
  });
});
