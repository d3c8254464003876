/**
 * The fuzzer's seed corpus: small, complete streams cut down from the
 * real-QEMU fixtures (their configuration record, page payloads, XBZRLE
 * deltas, compressed pages and device-state sections verbatim, RAMBlocks
 * shrunk to a few pages so a case costs well under a millisecond), plus the
 * real start of each fixture stream (real MEM_SIZE) closed with a valid tail,
 * plus synthetic streams for what the fixtures lack (x-ignore-shared, other
 * page sizes, block migration, commands, no footers).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliDecompressSync, deflateSync } from 'node:zlib';
import { ByteWriter } from '../codec/byte-writer.js';
import { StreamDecoder } from '../stream/decoder.js';
import type { RamBlockInfo } from '../stream/events.js';
import { parseTail } from '../stream/tail.js';
import { transcodeBytes, type TranscodeOptions } from '../stream/transcode.js';
import { xbzrleEncodeJs } from '../xbzrle/encode-js.js';
import { walkStream, type StreamMap } from './walk.js';
import { concatBytes } from '../codec/concat.js';
import { BLOCK_SECTION, RAM_SECTION, SeedWriter } from './seed-writer.js';

export { BLOCK_SECTION, RAM_SECTION, SeedWriter } from './seed-writer.js';

export interface Seed {
  name: string;
  bytes: Uint8Array;
  map: StreamMap;
  /** Relative frequency with which the fuzzer starts from this seed. */
  weight: number;
}

export const DEFAULT_FIXTURE_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'fixtures', 'qemu');

/** Fixtures whose streams feed the corpus, when present. */
export const FIXTURE_NAMES = [
  'plain',
  'xbzrle-hit',
  'xbzrle-miss',
  'compress-l1',
  'compress-l9',
  'compress-xbzrle',
  'block',
  'block-zero',
  'suppress-vmdesc',
  'ignore-shared',
  'dirty-bitmap',
];

/** What the corpus keeps from one fixture stream. */
interface FixtureParts {
  name: string;
  stream: Uint8Array;
  config: Uint8Array;
  blocks: RamBlockInfo[];
  normal: { block: string; offset: number; data: Uint8Array }[];
  zero: { block: string; offset: number; fill: number }[];
  xbzrle: { block: string; offset: number; data: Uint8Array }[];
  compressed: { block: string; offset: number; data: Uint8Array }[];
  chunks: { device: string; sector: number; data: Uint8Array | undefined }[];
  /** The dirty-bitmap section's records as QEMU wrote them, per section occurrence. */
  bitmaps: {
    kind: 'start' | 'part' | 'end' | 'full';
    section: { sectionId: number; idstr: string; instanceId: number; versionId: number };
    records: Uint8Array[];
  }[];
  tail: Uint8Array;
  ignoreShared: boolean;
}

function readFixture(dir: string, name: string): FixtureParts | undefined {
  const path = join(dir, name, 'stream.bin.br');
  if (!existsSync(path)) return undefined;
  let stream: Uint8Array;
  try {
    const b = brotliDecompressSync(readFileSync(path));
    stream = new Uint8Array(b.buffer, b.byteOffset, b.length);
  } catch {
    return undefined; // being regenerated right now
  }
  const parts: FixtureParts = {
    name,
    stream,
    config: new Uint8Array(0),
    blocks: [],
    normal: [],
    zero: [],
    xbzrle: [],
    compressed: [],
    chunks: [],
    bitmaps: [],
    tail: new Uint8Array(0),
    ignoreShared: false,
  };
  const tail: Uint8Array[] = [];
  let normals = 0;
  try {
    const d = new StreamDecoder((ev) => {
      switch (ev.type) {
        case 'configuration':
          parts.config = ev.configuration.raw.slice();
          parts.ignoreShared = ev.configuration.capabilities.includes('x-ignore-shared');
          return;
        case 'ram-blocks':
          if (parts.blocks.length === 0) parts.blocks = ev.blocks.map((b) => ({ ...b }));
          return;
        case 'page': {
          const rec = { block: ev.block.idstr, offset: ev.offset };
          if (ev.kind === 'zero' && parts.zero.length < 12) parts.zero.push({ ...rec, fill: ev.fill });
          if (ev.kind === 'normal' && normals++ % 97 === 0 && parts.normal.length < 24) parts.normal.push({ ...rec, data: ev.data.slice() });
          if (ev.kind === 'xbzrle' && parts.xbzrle.length < 24 && (parts.xbzrle.length < 8 || ev.data.length < 512)) {
            parts.xbzrle.push({ ...rec, data: ev.data.slice() });
          }
          if (ev.kind === 'compressed' && parts.compressed.length < 16) {
            const o = ev.dataOffset;
            const clen = ((stream[o - 4]! << 24) | (stream[o - 3]! << 16) | (stream[o - 2]! << 8) | stream[o - 1]!) >>> 0;
            parts.compressed.push({ ...rec, data: stream.slice(o, o + clen) });
          }
          return;
        }
        case 'block-chunk':
          if (parts.chunks.length < 6 && (ev.zero || parts.chunks.filter((c) => c.data).length < 1)) {
            parts.chunks.push({ device: ev.device, sector: ev.sector, data: ev.zero ? undefined : ev.data.slice() });
          }
          return;
        case 'section':
          if (ev.section.idstr === 'dirty-bitmap') parts.bitmaps.push({ kind: ev.kind, section: ev.section, records: [] });
          return;
        case 'dirty-bitmap':
          parts.bitmaps.at(-1)?.records.push(ev.record.raw.slice());
          return;
        case 'device-state':
          tail.push(ev.bytes.slice());
          return;
      }
    });
    d.push(stream);
    d.end();
  } catch {
    return undefined;
  }
  parts.tail = concatBytes(tail);
  return parts;
}

/** The device tail cut to a few small real device sections, with a vmdesc listing just those. */
export function reduceTail(tail: Uint8Array, keep = 4): Uint8Array {
  let info;
  try {
    info = parseTail(tail, 0, true);
  } catch {
    return tail;
  }
  if (!info.parsed || info.devices.length === 0) return tail;
  const small = info.devices.filter((d) => d.size <= 300);
  const chosen = new Set(small.slice(0, keep - 1));
  const last = info.devices[info.devices.length - 1]!;
  if (last.size <= 4096) chosen.add(last);
  const kept = info.devices.filter((d) => chosen.has(d));
  const w = new ByteWriter();
  for (const d of kept) {
    const headerLen = 1 + 4 + 1 + new TextEncoder().encode(d.idstr).length + 8;
    w.bytes(tail.subarray(d.offset, d.offset + headerLen + d.size + 5));
  }
  w.u8(0x00);
  const vmdesc = info.vmdesc as { devices?: { name: string; instance_id: number }[] } | undefined;
  if (vmdesc && Array.isArray(vmdesc.devices)) {
    const devices = vmdesc.devices.filter((v) => kept.some((d) => d.idstr === v.name && d.instanceId === v.instance_id));
    const json = new TextEncoder().encode(JSON.stringify({ ...vmdesc, devices }));
    w.u8(0x06).be32(json.length).bytes(json);
  }
  return w.take();
}

function smallSeed(f: FixtureParts): Uint8Array {
  const w = new SeedWriter();
  w.header().raw(f.config);
  const pagesOf = (b: RamBlockInfo): number => Math.max(1, Math.min(b.idstr === 'pc.ram' ? 16 : 4, Math.floor(b.length / 4096)));
  const blocks = f.blocks.map((b) => ({ ...b, length: pagesOf(b) * 4096 }));
  const size = new Map(blocks.map((b) => [b.idstr, b.length]));
  const at = (block: string, offset: number): number => (offset % (size.get(block) ?? 4096)) - ((offset % (size.get(block) ?? 4096)) % 4096);
  w.start(RAM_SECTION).memSize(blocks, f.ignoreShared).eos().footer(2);
  w.part(2);
  for (const z of f.zero.slice(0, 6)) w.zero(z.block, at(z.block, z.offset), z.fill);
  for (const p of f.normal.slice(0, 4)) w.page(p.block, at(p.block, p.offset), p.data);
  w.eos().footer(2).part(2);
  let xs = f.xbzrle.slice(0, 6);
  if (xs.length === 0 && f.normal.length >= 2) {
    // No XBZRLE in this fixture: deltas between two of its real pages.
    const enc = new Uint8Array(4096);
    for (let i = 1; i < Math.min(6, f.normal.length); i++) {
      const n = xbzrleEncodeJs(f.normal[i - 1]!.data, f.normal[i]!.data, enc);
      if (n > 0) xs.push({ block: f.normal[i]!.block, offset: f.normal[i]!.offset, data: enc.slice(0, n) });
    }
    xs = xs.slice(0, 4);
  }
  for (const x of xs) w.xbzrle(x.block, at(x.block, x.offset), x.data);
  let cs = f.compressed.slice(0, 3);
  if (cs.length === 0) cs = f.normal.slice(0, 2).map((p) => ({ ...p, data: new Uint8Array(deflateSync(p.data, { level: 1 })) }));
  for (const c of cs) w.compressed(c.block, at(c.block, c.offset), c.data);
  w.eos().footer(2).end(2);
  for (const p of f.normal.slice(5, 6)) w.page(p.block, at(p.block, p.offset), p.data);
  w.eos().footer(2);
  w.raw(reduceTail(f.tail));
  return w.take();
}

/**
 * A few-KB complete stream cut from a real one: its real bytes up to a RAM
 * record boundary about `approxBytes` in, then EOS, footer, an END section,
 * and the real device tail cut to a few small device sections (real bytes)
 * with the vmdesc listing just those.
 */
export function cutRealStream(stream: Uint8Array, approxBytes: number): Uint8Array | undefined {
  const tail: Uint8Array[] = [];
  let config: Uint8Array = new Uint8Array(0);
  const d = new StreamDecoder((ev) => {
    if (ev.type === 'device-state') tail.push(ev.bytes.slice());
    if (ev.type === 'configuration') config = ev.configuration.raw;
  });
  d.push(stream);
  d.end();
  return realStartSeed({ stream, tail: concatBytes(tail), config } as FixtureParts, approxBytes);
}

/** The fixture's real bytes up to a RAM record boundary a few KB in, closed by EOS, END and a reduced tail. */
function realStartSeed(f: FixtureParts, approxBytes: number): Uint8Array | undefined {
  const head = f.stream.subarray(0, Math.min(f.stream.length, approxBytes + 8192));
  const map = walkStream(head);
  const ram = map.sections.find((s) => s.idstr === 'ram');
  if (!ram) return undefined;
  const inPart = map.sections.find((s) => s.idstr === 'ram' && s.type === 0x02);
  if (!inPart) return undefined;
  const cut = map.marks.find((m) => m > inPart.at && m >= approxBytes && f.stream[m] !== 0x7e);
  if (cut === undefined) return undefined;
  const w = new SeedWriter();
  w.raw(f.stream.subarray(0, cut)).eos().footer(ram.id).end(ram.id).eos().footer(ram.id);
  w.raw(reduceTail(f.tail));
  return w.take();
}

function pattern(seed: number, size = 4096): Uint8Array {
  const p = new Uint8Array(size);
  for (let i = 0; i < size; i++) p[i] = (Math.imul(i + seed, 2654435761) >>> 24) & (i % 64 < 48 ? 0xff : 0);
  return p;
}

/** A synthetic device tail: FULL sections whose data holds footer-like bytes, EOF, vmdesc. */
export function syntheticTail(withVmdesc = true): Uint8Array {
  const w = new ByteWriter();
  const sec = (id: number, name: string, inst: number, ver: number, data: Uint8Array): void => {
    w.u8(0x04).be32(id).str8(name).be32(inst).be32(ver).bytes(data).u8(0x7e).be32(id);
  };
  sec(3, 'timer', 0, 2, Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 1, 0x7e, 0, 0, 0, 3, 0x04));
  sec(4, 'cpu_common', 0, 1, Uint8Array.of(0, 0, 0, 0, 0x7e));
  sec(5, 'globalstate', 0, 1, Uint8Array.of(0, 0, 0, 8, ...new TextEncoder().encode('running'), 0));
  w.u8(0x00);
  if (withVmdesc) {
    const json = new TextEncoder().encode(
      JSON.stringify({
        page_size: 4096,
        devices: [
          { name: 'timer', instance_id: 0, vmsd_name: 'timer', version: 2, fields: [{ name: 'cpu_ticks_offset', type: 'int64', size: 8 }] },
          { name: 'cpu_common', instance_id: 0 },
          { name: 'globalstate', instance_id: 0 },
        ],
      }),
    );
    w.u8(0x06).be32(json.length).bytes(json);
  }
  return w.take();
}

function syntheticSeeds(): { name: string; bytes: Uint8Array; weight: number }[] {
  const out: { name: string; bytes: Uint8Array; weight: number }[] = [];
  const ram = (w: SeedWriter, ps: number, opts: { shared?: boolean; flush?: boolean } = {}): void => {
    const blocks: RamBlockInfo[] = [
      { idstr: 'pc.ram', length: 8 * ps, ...(opts.shared ? { mrAddr: 0 } : {}) },
      { idstr: '0000:00:02.0/vga.vram', length: 2 * ps, ...(opts.shared ? { mrAddr: 0xfd000000 } : {}) },
    ];
    w.start(RAM_SECTION).memSize(blocks, opts.shared).eos().footer(2);
    w.part(2).zero('pc.ram', 0).page('pc.ram', ps, pattern(1, ps)).page('0000:00:02.0/vga.vram', 0, pattern(2, ps));
    if (opts.flush) w.flush();
    w.zero('pc.ram', 2 * ps, 0x5a)
      .eos()
      .footer(2);
    const enc = new Uint8Array(ps);
    const n = xbzrleEncodeJs(pattern(1, ps), pattern(3, ps), enc);
    w.part(2).xbzrle('pc.ram', ps, enc.subarray(0, Math.max(n, 0)));
    w.compressed('0000:00:02.0/vga.vram', ps, new Uint8Array(deflateSync(pattern(4, ps), { level: 1 })));
    w.eos()
      .footer(2)
      .end(2)
      .page('pc.ram', 7 * ps, pattern(5, ps))
      .eos()
      .footer(2);
  };
  let w = new SeedWriter().header().configuration('pc-i440fx-7.2');
  ram(w, 4096);
  out.push({ name: 'syn/small', bytes: w.raw(syntheticTail()).take(), weight: 3 });

  w = new SeedWriter().header().configuration('pc-i440fx-7.2', { capabilities: ['x-ignore-shared'], uuid: pattern(9, 16) });
  ram(w, 4096, { shared: true, flush: true });
  out.push({ name: 'syn/ignore-shared', bytes: w.raw(syntheticTail(false)).take(), weight: 2 });

  for (const bits of [10, 16]) {
    const ps = 1 << bits;
    w = new SeedWriter(ps).header().configuration('virt-7.2', { pageBits: bits });
    ram(w, ps);
    out.push({ name: `syn/page-bits-${bits}`, bytes: w.raw(syntheticTail()).take(), weight: bits === 10 ? 2 : 1 });
  }

  w = new SeedWriter().header().configuration('pc-i440fx-7.2');
  w.command(1, new Uint8Array(0)).command(2, Uint8Array.of(0, 0, 0, 1));
  w.command(3, Uint8Array.of(0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0x10, 0));
  w.start(BLOCK_SECTION).blockChunk('ide0-hd1', 0, undefined).blockChunk('ide0-hd1', 2048, undefined).blockProgress(50).blockEos().footer(1);
  ram(w, 4096);
  w.part(1).blockChunk('ide0-hd1', 4096, undefined).blockProgress(100).blockEos().footer(1);
  w.end(1).blockEos().footer(1);
  out.push({ name: 'syn/block-commands', bytes: w.raw(syntheticTail()).take(), weight: 2 });

  w = new SeedWriter().header().configuration('pc-i440fx-7.2');
  w.start(BLOCK_SECTION)
    .blockChunk('ide0-hd1', 0, pattern(6, 1 << 20))
    .blockEos()
    .footer(1);
  w.end(1).blockEos().footer(1);
  out.push({ name: 'syn/block-1mib', bytes: w.raw(syntheticTail()).take(), weight: 0.05 });

  // A machine type <= 2.3: no configuration, no footers.
  w = new SeedWriter().header();
  w.start(RAM_SECTION)
    .memSize([{ idstr: 'pc.ram', length: 4 * 4096 }])
    .eos();
  w.part(2).page('pc.ram', 4096, pattern(7)).zero('pc.ram', 0).eos().end(2).eos();
  w.raw(Uint8Array.of(0x04, 0, 0, 0, 3, 5, ...new TextEncoder().encode('timer'), 0, 0, 0, 0, 0, 0, 0, 2, 1, 2, 3, 0));
  out.push({ name: 'syn/no-footers', bytes: w.take(), weight: 1 });
  return out;
}

export interface CorpusOptions {
  fixtureDir?: string;
  /** Only synthetic seeds (no fixture reads). */
  syntheticOnly?: boolean;
}

/** Builds the seed corpus; fixtures that are missing or unreadable are skipped. */
export function buildCorpus(opts: CorpusOptions = {}): { seeds: Seed[]; fixtures: string[] } {
  const seeds: Seed[] = [];
  const fixtures: string[] = [];
  const add = (name: string, bytes: Uint8Array, weight: number): void => {
    seeds.push({ name, bytes, map: walkStream(bytes), weight });
  };
  if (!opts.syntheticOnly) {
    const dir = opts.fixtureDir ?? DEFAULT_FIXTURE_DIR;
    for (const name of FIXTURE_NAMES) {
      const f = readFixture(dir, name);
      if (!f || f.blocks.length === 0) continue;
      fixtures.push(name);
      add(`${name}/small`, smallSeed(f), 4);
      const start = realStartSeed(f, 6000);
      if (start) add(`${name}/real-start`, start, 2);
      if (f.chunks.length) {
        const w = new SeedWriter().header().raw(f.config).start(BLOCK_SECTION);
        for (const c of f.chunks) w.blockChunk(c.device, c.sector, c.data);
        w.blockEos().footer(1).end(1).blockEos().footer(1).raw(reduceTail(f.tail));
        add(`${name}/block`, w.take(), f.chunks.some((c) => c.data) ? 0.1 : 1);
      }
      if (f.bitmaps.length) {
        // QEMU's own dirty-bitmap records, in their sections, without the RAM around them
        const w = new SeedWriter().header().raw(f.config);
        for (const g of f.bitmaps) {
          if (g.kind === 'start') w.start(g.section);
          else if (g.kind === 'end') w.end(g.section.sectionId);
          else w.part(g.section.sectionId);
          for (const r of g.records) w.raw(r);
          w.footer(g.section.sectionId);
        }
        add(`${name}/dirty-bitmap`, w.raw(reduceTail(f.tail)).take(), 2);
      }
    }
  }
  for (const s of syntheticSeeds()) add(s.name, s.bytes, s.weight);
  // migstream's own extensions (manifest, LZ4 pages), where this tree's transcoder writes them.
  const base = seeds.find((s) => s.name === 'plain/small') ?? seeds.find((s) => s.name === 'syn/small');
  const variants: [string, Record<string, unknown>][] = [
    ['lz4', { compress: { codec: 'lz4' } }],
    ['zlib', { compress: { codec: 'zlib' } }],
    ['digest', { digest: 'xxh64' }], // per-iteration digests (extension iteration-digests)
  ];
  for (const [name, options] of variants) {
    try {
      const out = transcodeBytes(base!.bytes, options as TranscodeOptions);
      if (out.length !== base!.bytes.length) add(`${base!.name}+transcode-${name}`, out, 2);
    } catch {
      // not in this tree (yet)
    }
  }
  // Variable-size block chunks (extension block-chunks), from QEMU's 1 MiB ones.
  const block = seeds.find((s) => s.name === 'syn/block-commands');
  try {
    const out = transcodeBytes(block!.bytes, { blockChunk: 65536 } as TranscodeOptions);
    if (out.length !== block!.bytes.length) add('syn/block-commands+transcode-chunks', out, 2);
    for (const codec of ['lz4', 'zlib'] as const) {
      const packed = transcodeBytes(block!.bytes, { blockChunk: 16384, chunkCompress: { codec } } as TranscodeOptions);
      add(`syn/block-commands+transcode-chunks-${codec}`, packed, 2);
    }
  } catch {
    // not in this tree (yet)
  }
  return { seeds, fixtures };
}
