import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encode } from '@msgpack/msgpack';
import { xxhash64 } from 'hash-wasm';
import { afterAll, describe, expect, it } from 'vitest';
import { loadFixture } from '../fixtures/qemu/lib.mjs';
import { ByteWriter } from '../src/codec/byte-writer.js';
import { MigstreamError } from '../src/codec/errors.js';
import { decodeAll } from '../src/stream/decoder.js';
import { IterationDigests, VerifyingRamStore } from '../src/stream/digest.js';
import { encodeDumps } from '../src/stream/dump-encoder.js';
import { StreamEncoder } from '../src/stream/encoder.js';
import type { PageEvent, RamDigestEvent, StreamEvent } from '../src/stream/events.js';
import { encodeManifest } from '../src/stream/manifest.js';
import { iterationDigestsEntry } from '../src/stream/extensions/registry.js';
import { decodePooled, transcodeBytesPooled } from '../src/stream/pool/drivers.js';
import { ThreadPool } from '../src/stream/pool/thread-pool.js';
import { RamImage } from '../src/stream/ram-image.js';
import { StatsCollector } from '../src/stream/stats.js';
import { concatChunks, transcodeBytes } from '../src/stream/transcode.js';
import { decodeEvents, deviceTail, page, RAM, sameBytes } from './support/build.js';
import { dumpSeries } from './support/dumps.js';
import { requireBuiltCli, runCli } from './support/cli.js';

const fx = loadFixture('plain');
const plainQemu = transcodeBytes(fx.stream);
/** The plain fixture re-encoded with digests, and its events (in stream order). */
const digested = transcodeBytes(fx.stream, { digest: 'xxh64' });
const events = decodeEvents(digested);
const pool = new ThreadPool(2);
afterAll(() => pool.close());

/** Decodes with RAM applied to a verifying store; returns the store, the summary, or the error. */
function verify(stream: Uint8Array) {
  const ram = new VerifyingRamStore(new RamImage());
  const stats = new StatsCollector();
  let error: MigstreamError | undefined;
  try {
    decodeAll(stream, (ev) => {
      ram.handle(ev);
      stats.handle(ev);
    });
  } catch (e) {
    if (!(e instanceof MigstreamError)) throw e;
    error = e;
  }
  return { ram, summary: stats.summary, error, image: (ram.inner as RamImage).blocks.get('pc.ram') };
}

/** The iteration (RAM section index) each page event falls in. */
function pagesWithIteration(evs: StreamEvent[]): { ev: PageEvent; iteration: number }[] {
  const out: { ev: PageEvent; iteration: number }[] = [];
  let iteration = 0;
  for (const ev of evs) {
    if (ev.type === 'page') out.push({ ev, iteration });
    if (ev.type === 'iteration-end') iteration = ev.index + 1;
  }
  return out;
}

const digestsOf = (evs: StreamEvent[]) => evs.filter((e): e is RamDigestEvent => e.type === 'ram-digest');
const pageStart = (ev: PageEvent) => ev.dataOffset - (ev.wireBytes - ev.data.length);

/** A PAGE record with CONTINUE (8-byte header) in an iteration that sends at least `min` pages of its block. */
function pickPage(min = 2): { ev: PageEvent; iteration: number } {
  const pages = pagesWithIteration(events);
  const perIteration = new Map<number, number>();
  for (const p of pages) perIteration.set(p.iteration, (perIteration.get(p.iteration) ?? 0) + 1);
  const found = pages.find((p) => p.ev.kind === 'normal' && p.ev.wireBytes === 8 + 4096 && perIteration.get(p.iteration)! >= min && p.iteration > 1);
  if (!found) throw new Error('no suitable page record');
  return found;
}

/** The digest record that covers `ev` (the first digest of its block after it). */
function digestAfter(ev: PageEvent): RamDigestEvent {
  return digestsOf(events).find((d) => d.offset > ev.dataOffset && d.block.idstr === ev.block.idstr)!;
}

describe('iteration digests: writer and reader agree', () => {
  it('hashes be64 offset ‖ page content per record, in send order, with XXH64 (seed 0)', async () => {
    const d = new IterationDigests('xxh64');
    const reference: Uint8Array[] = [];
    // 40 records (past the 64 KiB staging buffer), interleaved with another block, offsets past 4 GiB
    for (let i = 0; i < 40; i++) {
      const p = page((k) => k * (i + 3));
      const offset = i === 7 ? 5 * 2 ** 32 + 4096 * i : 4096 * i;
      d.add('a', offset, p);
      reference.push(new ByteWriter().be64(offset).bytes(p).take());
      if (i % 9 === 0) d.addFill('b', 4096 * i, 0, 4096);
    }
    d.addFill('a', 8192, 0x5a, 4096);
    reference.push(new ByteWriter().be64(8192).bytes(new Uint8Array(4096).fill(0x5a)).take());
    expect(d.pending()).toEqual(['a', 'b']);
    expect(d.count('a')).toBe(41);
    const a = d.take('a');
    expect(a.count).toBe(41);
    expect(Buffer.from(a.digest).toString('hex')).toBe(await xxhash64(concatChunks(reference)));
    expect(d.take('b').count).toBe(5);
    // an empty digest is XXH64 of nothing (the canonical test vector)
    expect(Buffer.from(d.take('a').digest).toString('hex')).toBe('ef46db3751d8e999');
    expect(d.pending()).toEqual([]);
  });

  it.each([
    ['plain', {}],
    ['plain', { xbzrle: { cacheBytes: 16 << 20 } }],
    ['plain', { compress: { codec: 'zlib' as const } }],
    ['plain', { compress: { codec: 'lz4' as const } }],
    ['xbzrle-hit', { xbzrle: { cacheBytes: 16 << 20 } }],
    ['compress-l1', {}],
    ['compress-xbzrle', { compress: { codec: 'lz4' as const } }],
    ['block', { xbzrle: { cacheBytes: 16 << 20 } }],
  ])('real QEMU stream %s transcoded with digests and %j: every digest checks out and RAM is exact', (name, options) => {
    const f = loadFixture(name);
    const out = transcodeBytes(f.stream, { ...options, digest: 'xxh64' });
    const r = verify(out);
    expect(r.error).toBeUndefined();
    expect(sameBytes(r.image!, f.ram)).toBe(true);
    const s = r.summary;
    const pageRecords = Object.values(s.totals).reduce((n, k) => n + k.pages, 0);
    expect(s.digests).toMatchObject({ algorithm: 'xxh64', pageRecords });
    expect(r.ram.checked).toBe(s.digests!.records);
    expect(r.ram.pagesChecked).toBe(pageRecords);
    // every RAM section with page records has digests
    for (const it of s.iterations) {
      const n = it.zero.pages + it.normal.pages + it.xbzrle.pages + it.compressed.pages + it.lz4.pages;
      expect(it.digests > 0).toBe(n > 0);
    }
    if ('xbzrle' in options) expect(s.totals.xbzrle.pages).toBeGreaterThan(0); // the read-back path is exercised
    // transcoding it again without --digest drops them: plain QEMU records (loadable by QEMU) again
    const back = transcodeBytes(out, options as object);
    expect(verify(back).summary.manifest === null).toBe(!('compress' in options && options.compress?.codec === 'lz4'));
    expect(verify(back).summary.digests).toBeNull();
  });

  it('dropping digests gives exactly the QEMU stream transcode writes without them', () => {
    expect(sameBytes(transcodeBytes(digested), plainQemu)).toBe(true);
  });

  it('XBZRLE "unchanged" pages send no record and are not counted; ZERO records count with their zero content', () => {
    const dumps = dumpSeries(new Uint8Array(fx.ram), 3);
    const parts: Uint8Array[] = [];
    const r = encodeDumps([{ idstr: 'pc.ram', dumps }], (c) => parts.push(c.slice()), { xbzrle: { cacheBytes: 16 << 20 }, digest: 'xxh64' });
    const v = verify(concatChunks(parts));
    expect(v.error).toBeUndefined();
    expect(sameBytes(v.image!, dumps.at(-1)!)).toBe(true);
    const sent = r.iterations.reduce((n, it) => n + it.records.zero + it.records.normal + it.records.xbzrle + it.records.compressed, 0);
    expect(v.ram.pagesChecked).toBe(sent);
    expect(r.iterations[0]!.records.zero).toBeGreaterThan(0);
  });

  it('the pooled transcoder writes the same bytes, and the pooled decoder checks them (even when asked for landing order)', async () => {
    for (const compress of [undefined, { codec: 'lz4' as const }, { codec: 'zlib' as const }]) {
      const sync = transcodeBytes(fx.stream, { compress, digest: 'xxh64' });
      const pooled = await transcodeBytesPooled(fx.stream, { compress, digest: 'xxh64', pool, batchPages: 16 });
      expect(sameBytes(pooled, sync)).toBe(true);
      const store = new RamImage();
      const seen: string[] = [];
      await decodePooled(sync, (ev) => seen.push(ev.type), { pool, ram: store, order: 'landing', batchPages: 8 });
      expect(sameBytes(store.blocks.get('pc.ram')!, fx.ram)).toBe(true);
      expect(seen.filter((t) => t === 'ram-digest').length).toBeGreaterThan(0);
    }
  });

  it('decodes (and checks) the same for any chunking', () => {
    const d0 = new Uint8Array(fx.ram.subarray(8 << 20, (8 << 20) + 24 * 4096)); // 24 pages of real guest RAM, a few then changed
    const d1 = d0.slice();
    for (let p = 2; p < 12; p++) d1[p * 4096 + p * 7]! ^= 0x5a;
    const d2 = d1.slice();
    for (let p = 6; p < 9; p++) d2[p * 4096 + 100]! ^= 0xa5;
    const dumps = [d0, d1, d2];
    const parts: Uint8Array[] = [];
    encodeDumps([{ idstr: 'pc.ram', dumps }], (c) => parts.push(c.slice()), { xbzrle: { cacheBytes: 1 << 20 }, digest: 'xxh64' });
    const bytes = concatChunks(parts);
    const whole = decodeEvents(bytes);
    expect(digestsOf(whole).length).toBe(3);
    for (const size of [1, 7, 4099, 65536]) expect(decodeEvents(bytes, size)).toEqual(whole);
    expect(verify(bytes).ram.checked).toBe(3);
  });
});

describe('iteration digests catch what the decoder alone accepts', () => {
  it('a single flipped byte in a page payload fails, naming the iteration, the RAMBlock and the digest record', () => {
    const { ev, iteration } = pickPage();
    const bad = digested.slice();
    bad[ev.dataOffset + 1234]! ^= 0x01;
    expect(() => decodeAll(bad, () => {})).not.toThrow(); // structurally fine: only the digest can tell
    const { error } = verify(bad);
    const digest = digestAfter(ev);
    expect(error?.code).toBe('DIGEST_MISMATCH');
    expect(error?.offset).toBe(digest.offset);
    expect(digest.iteration).toBe(iteration);
    expect(error?.context.ramBlock).toBe('pc.ram');
    expect(error?.message).toBe(
      `at byte ${digest.offset}: iteration ${iteration}: digest mismatch for RAMBlock "pc.ram": the pages hash to ${error?.message.match(/hash to (0x[0-9a-f]{16})/)?.[1]}, the digest record says 0x${Buffer.from(digest.digest).toString('hex')} (section "ram", RAMBlock "pc.ram")`,
    );
  });

  it('a flipped byte in an XBZRLE delta fails too (the digest is over the page the delta leaves)', () => {
    const x = transcodeBytes(fx.stream, { digest: 'xxh64', xbzrle: { cacheBytes: 16 << 20 } });
    const xe = decodeEvents(x);
    const p = pagesWithIteration(xe).find((q) => q.ev.kind === 'xbzrle' && q.ev.data.length > 8)!;
    const bad = x.slice();
    bad[p.ev.dataOffset + p.ev.data.length - 1]! ^= 0x10; // the last byte is always literal data
    expect(() => decodeAll(bad, () => {})).not.toThrow();
    const { error } = verify(bad);
    expect(error?.code).toBe('DIGEST_MISMATCH');
    expect(error?.message).toContain(`iteration ${p.iteration}: digest mismatch for RAMBlock "${p.ev.block.idstr}"`);
  });

  it('a page moved to another offset fails (the offset is hashed with the content)', () => {
    const { ev, iteration } = pickPage();
    const bad = digested.slice();
    const start = pageStart(ev);
    const view = new DataView(bad.buffer, bad.byteOffset);
    const word = view.getUint32(start + 4);
    const moved = ev.offset === 0 ? 4096 : ev.offset - 4096;
    view.setUint32(start + 4, moved + (word & 0xfff));
    expect(() => decodeAll(bad, () => {})).not.toThrow();
    const { error } = verify(bad);
    expect(error?.code).toBe('DIGEST_MISMATCH');
    expect(error?.offset).toBe(digestAfter(ev).offset);
    expect(error?.message).toContain(`iteration ${iteration}: digest mismatch for RAMBlock "pc.ram": the pages hash to`);
  });

  it('a dropped page record fails on the count', () => {
    const { ev, iteration } = pickPage();
    const start = pageStart(ev);
    const bad = concatChunks([digested.subarray(0, start), digested.subarray(start + ev.wireBytes)]);
    expect(() => decodeAll(bad, () => {})).not.toThrow();
    const { error } = verify(bad);
    const digest = digestAfter(ev);
    expect(error?.code).toBe('DIGEST_MISMATCH');
    expect(error?.offset).toBe(digest.offset - ev.wireBytes);
    expect(error?.detail).toBe(
      `iteration ${iteration}: digest mismatch for RAMBlock "pc.ram": ${digest.count - 1} page records arrived, the digest record counts ${digest.count}`,
    );
  });

  it('a dropped digest record fails at the RAM EOS', () => {
    const digest = digestsOf(events)[3]!;
    const bad = concatChunks([digested.subarray(0, digest.offset), digested.subarray(digest.offset + digest.wireBytes)]);
    const { error } = verify(bad);
    const eos = events.find((e): e is Extract<StreamEvent, { type: 'iteration-end' }> => e.type === 'iteration-end' && e.index === digest.iteration)!;
    expect(error?.code).toBe('DIGEST_MISMATCH');
    expect(error?.offset).toBe(eos.offset - digest.wireBytes);
    expect(error?.detail).toBe(`iteration ${digest.iteration}: ${digest.count} page records of RAMBlock "pc.ram" have no digest record before the RAM EOS`);
  });

  it('the transcoders and the pooled decoder fed a corrupted digest stream stop with the same error', async () => {
    const { ev } = pickPage();
    const bad = digested.slice();
    bad[ev.dataOffset]! ^= 0xff;
    const expected = expect.objectContaining({ code: 'DIGEST_MISMATCH', offset: digestAfter(ev).offset });
    expect(() => transcodeBytes(bad)).toThrow(expected);
    expect(() => transcodeBytes(bad, { digest: 'xxh64', compress: { codec: 'lz4' } })).toThrow(expected);
    await expect(transcodeBytesPooled(bad, { pool, compress: { codec: 'lz4' } })).rejects.toThrow(expected);
    await expect(decodePooled(bad, () => {}, { pool, ram: new RamImage() })).rejects.toThrow(expected);
    await expect(decodePooled(bad, () => {}, { pool })).resolves.toBe(bad.length); // without a RAM store nothing is checked
  });
});

describe('iteration digests: the record and its declaration', () => {
  /** A one-block stream with the given manifest and RAM PART records. */
  function tiny(manifest: Uint8Array | undefined, part: (e: StreamEncoder) => void): Uint8Array {
    const parts: Uint8Array[] = [];
    const e = new StreamEncoder((c) => parts.push(c.slice()));
    e.header().configuration('pc-i440fx-7.2');
    if (manifest) e.manifest(manifest);
    e.sectionStart(RAM)
      .memSize([{ idstr: 'pc.ram', length: 4 * 4096 }])
      .ramEos()
      .footer(2);
    e.sectionPart(2);
    part(e);
    e.ramEos().footer(2);
    e.raw(deviceTail());
    e.flush();
    return concatChunks(parts);
  }
  const DECLARED = encodeManifest([iterationDigestsEntry('xxh64')]);
  const p1 = page((i) => i * 3);

  it('lays out as be64 0x800 [|CONTINUE], [str8 idstr], be64 count, u8 length, digest', () => {
    const d = new IterationDigests();
    d.add('pc.ram', 4096, p1);
    const { count, digest } = d.take('pc.ram');
    const bytes = tiny(DECLARED, (e) => e.page('pc.ram', 4096, p1).ramDigest('pc.ram', count, digest));
    const at = Buffer.from(bytes).indexOf(Buffer.from(digest)) - 1 - 8 - 8;
    expect(Buffer.from(bytes.subarray(at, at + 8 + 8 + 1)).toString('hex')).toBe('0000000000000820' + '0000000000000001' + '08');
    const v = verify(bytes);
    expect(v.error).toBeUndefined();
    expect(v.ram.checked).toBe(1);
    const ev = digestsOf(decodeEvents(bytes))[0]!;
    expect(ev).toMatchObject({ type: 'ram-digest', iteration: 1, count: 1, algorithm: 'xxh64', offset: at, wireBytes: 25 });
  });

  it("without a declaration the record is QEMU's unknown flag combination", () => {
    const bytes = tiny(undefined, (e) => e.page('pc.ram', 0, p1).ramDigest('pc.ram', 1, new Uint8Array(8)));
    expect(() => decodeAll(bytes, () => {})).toThrow(
      expect.objectContaining({ code: 'BAD_RAM_RECORD', detail: 'Unknown combination of migration flags: 0x820' }),
    );
  });

  it('an unknown algorithm is UNSUPPORTED_EXTENSION; a wrong flag is BAD_MANIFEST; a wrong length BAD_RAM_RECORD', () => {
    const m = (params: object) => encode({ format: 'migstream', version: 1, extensions: [{ name: 'iteration-digests', version: 1, params }] });
    const unknown = tiny(m({ flag: 0x800, algorithm: 'sha1' }), () => {});
    expect(() => decodeAll(unknown, () => {})).toThrow(expect.objectContaining({ code: 'UNSUPPORTED_EXTENSION' }));
    expect(() => decodeAll(unknown, () => {})).toThrow(/algorithm "sha1", which this migstream does not support \(supported: xxh64\)/);
    expect(() =>
      decodeAll(
        tiny(m({ flag: 0x400, algorithm: 'xxh64' }), () => {}),
        () => {},
      ),
    ).toThrow(expect.objectContaining({ code: 'BAD_MANIFEST' }));
    const short = tiny(DECLARED, (e) => e.page('pc.ram', 0, p1).ramDigest('pc.ram', 1, new Uint8Array(4)));
    expect(() => decodeAll(short, () => {})).toThrow(expect.objectContaining({ code: 'BAD_RAM_RECORD', detail: 'digest of 4 bytes: xxh64 digests have 8' }));
  });

  it('a digest record with address bits is malformed', () => {
    const bytes = tiny(DECLARED, (e) =>
      e.raw(
        new ByteWriter()
          .be64(4096 + 0x800)
          .str8('pc.ram')
          .be64(0)
          .u8(8)
          .bytes(new Uint8Array(8))
          .take(),
      ),
    );
    expect(() => decodeAll(bytes, () => {})).toThrow(expect.objectContaining({ code: 'BAD_RAM_RECORD' }));
  });
});

describe('iteration digests on the command line', () => {
  const work = mkdtempSync(join(tmpdir(), 'migstream-digest-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));
  requireBuiltCli();
  const run = runCli;

  it('transcode --digest writes them, inspect shows and checks them, transcode without drops them', () => {
    const src = join(work, 'plain.stream');
    writeFileSync(src, fx.stream);
    const out = join(work, 'digest.stream');
    expect(run(['transcode', src, out, '--digest']).code).toBe(0);
    expect(sameBytes(readFileSync(out), digested)).toBe(true);
    const text = run(['inspect', out]);
    expect(text.code).toBe(0);
    const s = verify(digested).summary.digests!;
    expect(text.stdout).toContain(`iteration digests (xxh64): ${s.records} records over ${s.pageRecords} page records, ${s.bytes} bytes, all verified`);
    expect(text.stdout).toMatch(/#\s+kind\s+zero\s+normal\s+xbzrle\s+compressed\s+lz4\s+bytes\s+digests/);
    const json = JSON.parse(run(['inspect', out, '--json']).stdout);
    expect(json.digests).toEqual({ ...s, verified: true });
    expect(json.iterations[1].digests).toBeGreaterThan(0);
    const back = join(work, 'back.stream');
    expect(run(['transcode', out, back]).code).toBe(0);
    expect(sameBytes(readFileSync(back), plainQemu)).toBe(true);
    expect(JSON.parse(run(['inspect', back, '--json']).stdout).digests).toBeNull();
  });

  it('encode --digest writes them (also with compression on workers)', () => {
    const dumps = dumpSeries(new Uint8Array(fx.ram), 2).map((d, i) => {
      const p = join(work, `d${i}.bin`);
      writeFileSync(p, d);
      return p;
    });
    for (const extra of [[], ['--compress', 'lz4', '--workers', '2'], ['--xbzrle']]) {
      const out = join(work, 'enc.stream');
      expect(run(['encode', '--dumps', ...dumps, '--out', out, '--digest', ...extra]).code).toBe(0);
      const v = verify(new Uint8Array(readFileSync(out)));
      expect(v.error).toBeUndefined();
      expect(v.ram.checked).toBeGreaterThan(0);
    }
  });

  it('verify, extract and inspect exit 3 with one line naming the offset, the iteration and the RAMBlock', () => {
    const { ev, iteration } = pickPage();
    const bad = digested.slice();
    bad[ev.dataOffset + 99]! ^= 0x80;
    const path = join(work, 'bad.stream');
    writeFileSync(path, bad);
    const dir = join(work, 'x');
    const offset = digestAfter(ev).offset;
    for (const args of [
      ['verify', path, '--against', dir],
      ['extract', path, '--out', dir],
      ['inspect', path],
      ['transcode', path, join(work, 'o.stream')],
    ]) {
      const r = run(args);
      expect(r.code).toBe(3);
      const lines = r.stderr.trimEnd().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(
        new RegExp(
          `^migstream: bad stream \\[DIGEST_MISMATCH\\] at byte ${offset}: iteration ${iteration}: digest mismatch for RAMBlock "pc.ram": the pages hash to 0x[0-9a-f]{16}, the digest record says 0x[0-9a-f]{16} \\(section "ram", RAMBlock "pc.ram"\\)$`,
        ),
      );
    }
  });
});
