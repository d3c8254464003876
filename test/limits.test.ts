/**
 * One test per limit for hostile input (docs/limits.md): each builds a stream
 * just under and just over the limit and checks the outcome exactly.
 */
import { deflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { ByteWriter } from '../src/codec/byte-writer.js';
import { MigstreamError } from '../src/codec/errors.js';
import { RAM_LZ4_PAGE } from '../src/stream/constants.js';
import { DEFAULT_LIMITS, decodeAll, StreamDecoder, type DecoderLimits } from '../src/stream/decoder.js';
import { StreamEncoder } from '../src/stream/encoder.js';
import type { RamBlockInfo, StreamEvent } from '../src/stream/events.js';
import { encodeManifest } from '../src/stream/manifest.js';
import { blockChunksEntry, lz4PagesEntry } from '../src/stream/extensions/registry.js';
import { DecompressQueue } from '../src/stream/pool/decompress-queue.js';
import { PooledEncoder } from '../src/stream/pool/pooled-encoder.js';
import { runTask, type PoolResult, type PoolTask } from '../src/stream/pool/tasks.js';
import type { PagePool } from '../src/stream/pool/thread-pool.js';
import { encoderCompressors, resolveSpec } from '../src/stream/page-codecs.js';
import { RamImage } from '../src/stream/ram-image.js';
import { concatChunks, transcodeBytes } from '../src/stream/transcode.js';
import { BLOCK, deviceTail, fullSection, page, RAM } from './support/build.js';

type Outcome = { ok: true; events: StreamEvent[]; trace: string[] } | { ok: false; code: string; offset: number; detail: string };

/** The trace with runs of device-state pieces joined (their split follows the input's chunks). */
function mergeDeviceState(trace: string[]): string[] {
  const out: string[] = [];
  let state = '';
  for (const t of trace) {
    const piece = /^\{"type":"device-state","bytes":"([0-9a-f]*)"\}$/.exec(t);
    if (piece) state += piece[1];
    else {
      if (state) out.push(`device-state ${state}`);
      state = '';
      out.push(t);
    }
  }
  if (state) out.push(`device-state ${state}`);
  return out;
}

/** An event as text, payload bytes included, taken while the event is handed out. */
function traceOf(ev: StreamEvent): string {
  return JSON.stringify(ev, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : typeof v === 'bigint' ? `${v}n` : v));
}

/** The outcome of decoding `bytes` whole and in 7-byte pieces (asserted equal). */
function decode(bytes: Uint8Array, limits: Partial<DecoderLimits> = {}, strict = false): Outcome {
  const results = [Infinity, 7].map((chunk): Outcome => {
    const events: StreamEvent[] = [];
    const trace: string[] = [];
    try {
      decodeChunked(
        bytes,
        chunk,
        limits,
        (ev) => {
          events.push(ev);
          trace.push(traceOf(ev));
        },
        strict,
      );
      return { ok: true, events, trace };
    } catch (e) {
      if (!(e instanceof MigstreamError)) throw e;
      return { ok: false, code: e.code, offset: e.offset, detail: e.detail };
    }
  });
  const [whole, pieces] = results as [Outcome, Outcome];
  if (whole.ok) {
    expect(pieces.ok, 'whole decodes, 7-byte pieces must too').toBe(true);
    // the same events with the same payloads; device state may arrive in other pieces, so it is compared joined
    const merged = (o: Outcome) => (o.ok ? mergeDeviceState(o.trace) : []);
    expect(merged(pieces)).toEqual(merged(whole));
  } else expect(pieces).toEqual(whole);
  return whole;
}

function decodeChunked(bytes: Uint8Array, chunk: number, limits: Partial<DecoderLimits>, handler: (ev: StreamEvent) => void, strict = false): void {
  const d = new StreamDecoder(handler, { limits, strict });
  if (chunk === Infinity) d.push(bytes);
  else for (let i = 0; i < bytes.length; i += chunk) d.push(bytes.subarray(i, i + chunk));
  d.end();
}

const ok = { ok: true };
const fail = (code: string, offset: number, detail: string) => ({ ok: false, code, offset, detail });

interface Build {
  machine?: string;
  capabilities?: string[];
  manifest?: Uint8Array;
  blocks?: RamBlockInfo[];
  /** Records of a RAM PART section; `at()` is the stream offset of the next byte. */
  part?: (w: ByteWriter, at: () => number) => void;
  /** Records of a block section (START … EOS). */
  block?: (w: ByteWriter, at: () => number) => void;
  tail?: Uint8Array;
}

/** A stream: header, configuration, [manifest], RAM START with MEM_SIZE, [a RAM PART], [a block section], a device tail. */
function build(b: Build): { bytes: Uint8Array; marks: Record<string, number> } {
  const w = new ByteWriter();
  const marks: Record<string, number> = {};
  const parts: Uint8Array[] = [];
  let written = 0;
  const e = new StreamEncoder(
    (c) => {
      parts.push(c.slice());
      written += c.length;
    },
    { chunkSize: 1 << 30 },
  );
  const flushW = () => {
    e.flush();
    const bytes = w.take();
    parts.push(bytes);
    written += bytes.length;
  };
  e.header().configuration(b.machine ?? 'pc-i440fx-7.2', b.capabilities ?? []);
  if (b.manifest) e.manifest(b.manifest);
  e.flush();
  marks.memSize = written + 1 + 4 + 4 + 4 + 4; // START header: type, id, str8 "ram" (4), instance, version
  e.sectionStart(RAM)
    .memSize(b.blocks ?? [{ idstr: 'pc.ram', length: 4 * 4096 }])
    .ramEos()
    .footer(RAM.sectionId);
  if (b.part) {
    e.sectionPart(RAM.sectionId);
    e.flush();
    const start = written;
    b.part(w, () => start + w.length);
    flushW();
    e.ramEos().footer(RAM.sectionId);
  }
  if (b.block) {
    e.sectionStart(BLOCK);
    e.flush();
    const start = written;
    b.block(w, () => start + w.length);
    flushW();
    e.blockEos().footer(BLOCK.sectionId);
  }
  e.flush();
  marks.tail = written;
  parts.push(b.tail ?? deviceTail());
  return { bytes: concatChunks(parts), marks };
}

const str = (n: number, c = 'x') => c.repeat(n);

describe('DEFAULT_LIMITS', () => {
  it('are the documented defaults', () => {
    expect(DEFAULT_LIMITS).toEqual({
      maxRamBlocks: 1024,
      maxTotalRam: 2 ** 40,
      maxTailBytes: 64 << 20,
      maxVmdescBytes: 16 << 20,
      maxMachineName: 256,
      maxIdstrLength: 255,
      maxXbzrleLength: Infinity,
      maxCompressedLength: Infinity,
      maxBlockChunk: 1 << 20,
    });
  });
});

describe('maxIdstrLength', () => {
  it('default 255: the longest idstr a str8 can hold is accepted', () => {
    const long = str(255);
    const { bytes } = build({ blocks: [{ idstr: long, length: 4096 }], part: (w) => w.be64(0x02).str8(long).u8(0) });
    const r = decode(bytes);
    expect(r.ok).toBe(true);
  });

  it('a RAMBlock idstr in MEM_SIZE: 16 bytes pass a limit of 16, 17 fail at the length byte', () => {
    const under = build({ blocks: [{ idstr: str(16), length: 4096 }] });
    expect(decode(under.bytes, { maxIdstrLength: 16 })).toMatchObject(ok);
    const over = build({ blocks: [{ idstr: str(17), length: 4096 }] });
    expect(decode(over.bytes, { maxIdstrLength: 16 })).toEqual(
      fail('LIMIT', over.marks.memSize! + 8, 'a RAMBlock idstr in MEM_SIZE of 17 bytes exceeds the limit of 16'),
    );
  });

  it('a RAMBlock idstr in a page record: over the limit is LIMIT, not an unknown RAMBlock', () => {
    let rec = 0;
    const over = build({
      part: (w, at) => {
        rec = at();
        w.be64(0x02).str8(str(17)).u8(0);
      },
    });
    expect(decode(over.bytes, { maxIdstrLength: 16 })).toEqual(fail('LIMIT', rec + 8, 'a RAMBlock idstr of 17 bytes exceeds the limit of 16'));
    expect(decode(over.bytes, { maxIdstrLength: 17 })).toMatchObject({ code: 'UNKNOWN_RAMBLOCK' });
  });

  it('a section idstr: "ram" passes a limit of 3, fails a limit of 2 at its length byte', () => {
    const { bytes, marks } = build({ blocks: [{ idstr: 'a', length: 4096 }] });
    expect(decode(bytes, { maxIdstrLength: 3 })).toMatchObject(ok);
    expect(decode(bytes, { maxIdstrLength: 2 })).toEqual(fail('LIMIT', marks.memSize! - 12, 'a section idstr of 3 bytes exceeds the limit of 2'));
  });

  it('a block device name: 8 bytes pass a limit of 8, 9 fail', () => {
    let rec = 0;
    const chunk = (name: string) =>
      build({
        block: (w, at) => {
          rec = at();
          w.be64(0x01 | 0x08).str8(name); // DEVICE_BLOCK | ZERO_BLOCK at sector 0
        },
      }).bytes;
    expect(decode(chunk('ide0-hd1'), { maxIdstrLength: 8 })).toMatchObject(ok);
    expect(decode(chunk('ide0-hd10'), { maxIdstrLength: 8 })).toEqual(fail('LIMIT', rec + 8, 'a block device name of 9 bytes exceeds the limit of 8'));
  });
});

describe('maxRamBlocks', () => {
  const blocks = (n: number) => Array.from({ length: n }, (_, i) => ({ idstr: `b${i}`, length: 4096 }));

  it('default 1024: 1024 RAMBlocks pass, the 1025th fails at its idstr', () => {
    expect(decode(build({ blocks: blocks(1024) }).bytes)).toMatchObject(ok);
    const over = build({ blocks: blocks(1025) });
    const idAt = over.marks.memSize! + 8 + blocks(1024).reduce((n, b) => n + 1 + b.idstr.length + 8, 0);
    expect(decode(over.bytes)).toEqual(fail('LIMIT', idAt, 'more than 1024 RAMBlocks in MEM_SIZE'));
  });

  it('configured 2: 2 pass, 3 fail', () => {
    expect(decode(build({ blocks: blocks(2) }).bytes, { maxRamBlocks: 2 })).toMatchObject(ok);
    const over = build({ blocks: blocks(3) });
    expect(decode(over.bytes, { maxRamBlocks: 2 })).toEqual(fail('LIMIT', over.marks.memSize! + 8 + 2 * (1 + 2 + 8), 'more than 2 RAMBlocks in MEM_SIZE'));
  });
});

describe('maxTotalRam', () => {
  it('default 1 TiB: MEM_SIZE of exactly 2^40 passes, the next page-aligned total fails at the record', () => {
    expect(decode(build({ blocks: [{ idstr: 'pc.ram', length: 2 ** 40 }] }).bytes)).toMatchObject(ok);
    const over = build({ blocks: [{ idstr: 'pc.ram', length: 2 ** 40 + 4096 }] });
    expect(decode(over.bytes)).toEqual(fail('LIMIT', over.marks.memSize!, `MEM_SIZE declares ${2 ** 40 + 4096} bytes of RAM, above the limit of ${2 ** 40}`));
  });

  it('configured 64 KiB', () => {
    expect(
      decode(
        build({
          blocks: [
            { idstr: 'a', length: 32768 },
            { idstr: 'b', length: 32768 },
          ],
        }).bytes,
        { maxTotalRam: 65536 },
      ),
    ).toMatchObject(ok);
    const over = build({
      blocks: [
        { idstr: 'a', length: 32768 },
        { idstr: 'b', length: 36864 },
      ],
    });
    expect(decode(over.bytes, { maxTotalRam: 65536 })).toEqual(
      fail('LIMIT', over.marks.memSize!, 'MEM_SIZE declares 69632 bytes of RAM, above the limit of 65536'),
    );
  });

  it("the transcoder's in-memory RAM (maxRamBytes) fails at the MEM_SIZE record too", () => {
    const under = build({ blocks: [{ idstr: 'pc.ram', length: 65536 }] });
    expect(() => transcodeBytes(under.bytes, { maxRamBytes: 65536 })).not.toThrow();
    const over = build({ blocks: [{ idstr: 'pc.ram', length: 65536 + 4096 }] });
    expect(() => transcodeBytes(over.bytes, { maxRamBytes: 65536 })).toThrow(
      expect.objectContaining({ code: 'LIMIT', offset: over.marks.memSize, detail: 'RAM of 69632 bytes exceeds the in-memory image limit of 65536' }),
    );
    expect(() => new RamImage(10).setBlocks([{ idstr: 'x', length: 11 }], 42)).toThrow(expect.objectContaining({ code: 'LIMIT', offset: 42 }));
  });
});

/** An XBZRLE payload of exactly `len` (>= 3) bytes: zrun 0, one nzrun of the rest. */
function xbzrlePayload(len: number): Uint8Array {
  const w = new ByteWriter().u8(0);
  const n = len - 1 - (len - 1 > 128 ? 2 : 1);
  if (n >= 128) w.u8((n & 0x7f) | 0x80).u8(n >>> 7);
  else w.u8(n);
  w.bytes(page((i) => i + 1, n));
  const out = w.take();
  expect(out.length).toBe(len);
  return out;
}

describe('maxXbzrleLength', () => {
  const record = (len: number) => {
    let rec = 0;
    const b = build({
      part: (w, at) => {
        w.be64(0x08).str8('pc.ram').bytes(new Uint8Array(4096)); // the page, then a delta against it
        rec = at();
        const data = xbzrlePayload(len);
        w.be64(0x40 | 0x20)
          .u8(1)
          .be16(data.length)
          .bytes(data);
      },
    });
    return { bytes: b.bytes, lenAt: rec + 9 };
  };

  it("default: QEMU's own check, a payload of the page size passes, one byte more is QEMU's len overflow", () => {
    expect(decode(record(4096).bytes)).toMatchObject(ok);
    const over = record(4097);
    expect(decode(over.bytes)).toEqual(fail('XBZRLE_DECODE', over.lenAt, 'Failed to load XBZRLE page - len overflow! 4097 > 4096'));
  });

  it('configured 100: 100 bytes pass, 101 fail at the length', () => {
    expect(decode(record(100).bytes, { maxXbzrleLength: 100 })).toMatchObject(ok);
    const over = record(101);
    expect(decode(over.bytes, { maxXbzrleLength: 100 })).toEqual(fail('LIMIT', over.lenAt, 'XBZRLE payload of 101 bytes exceeds the limit of 100'));
  });
});

describe('maxCompressedLength', () => {
  const data = page((i) => (i * 2654435761) >>> 13);
  const stored = new Uint8Array(deflateSync(data, { level: 0 })); // 4107 bytes: a stored block
  /** A COMPRESS_PAGE (zlib) or LZ4 record whose payload is `payload`. */
  const record = (flag: number, payload: Uint8Array, manifest?: Uint8Array) => {
    let rec = 0;
    const b = build({
      manifest,
      part: (w, at) => {
        rec = at();
        w.be64(flag).str8('pc.ram').be32(payload.length).bytes(payload);
      },
    });
    return { bytes: b.bytes, lenAt: rec + 8 + 7, dataAt: rec + 8 + 7 + 4 };
  };
  const pad = (b: Uint8Array, to: number) => concatChunks([b, new Uint8Array(to - b.length)]);
  /** An LZ4 block of literals only: token, length bytes, the page (4114 bytes for 4 KiB). */
  const lz4Literals = new ByteWriter()
    .u8(0xf0)
    .bytes(new Uint8Array(16).fill(0xff))
    .u8(4096 - 15 - 255 * 16)
    .bytes(data)
    .take();
  const LZ4 = encodeManifest([lz4PagesEntry({ pageSize: 4096, acceleration: 1, compressor: 'migstream-lz4' })]);
  const pageOf = (r: Outcome) => (r.ok ? (r.events.find((e) => e.type === 'page') as { data: Uint8Array } | undefined)?.data : undefined);

  it("zlib, default: QEMU's bound compressBound(4096) = 4110 passes (QEMU ignores bytes after the zlib end), 4111 is QEMU's error", () => {
    expect(stored.length).toBe(4107);
    const under = decode(record(0x100, pad(stored, 4110)).bytes);
    expect(Buffer.from(pageOf(under)!).equals(Buffer.from(data))).toBe(true);
    const over = record(0x100, pad(stored, 4111));
    expect(decode(over.bytes)).toEqual(fail('DECOMPRESS', over.lenAt, 'Invalid compressed data length: 4111 (at most 4110)'));
  });

  it('zlib, configured 4107: a 4107-byte page passes, 4108 bytes fail at the length', () => {
    expect(decode(record(0x100, stored).bytes, { maxCompressedLength: 4107 })).toMatchObject(ok);
    const over = record(0x100, pad(stored, 4108));
    expect(decode(over.bytes, { maxCompressedLength: 4107 })).toEqual(fail('LIMIT', over.lenAt, 'compressed page of 4108 bytes exceeds the limit of 4107'));
  });

  it('LZ4, default: LZ4_compressBound(4096) = 4128 passes the length check (the block is then decoded), 4129 fails at the length', () => {
    expect(lz4Literals.length).toBe(4114);
    const under = record(RAM_LZ4_PAGE, pad(lz4Literals, 4128), LZ4);
    const r = decode(under.bytes);
    // 14 stray bytes after the last literal are not a valid block: the error is the block's, at its payload
    expect(r).toMatchObject({ ok: false, code: 'DECOMPRESS', offset: under.dataAt });
    expect((r as { detail: string }).detail).toMatch(/^LZ4 page failed to decompress/);
    const over = record(RAM_LZ4_PAGE, pad(lz4Literals, 4129), LZ4);
    expect(decode(over.bytes)).toEqual(fail('DECOMPRESS', over.lenAt, 'Invalid LZ4 page length: 4129 (1..4128)'));
  });

  it('LZ4, configured 4114: a 4114-byte block passes, 4115 bytes fail at the length', () => {
    const under = decode(record(RAM_LZ4_PAGE, lz4Literals, LZ4).bytes, { maxCompressedLength: 4114 });
    expect(Buffer.from(pageOf(under)!).equals(Buffer.from(data))).toBe(true);
    const over = record(RAM_LZ4_PAGE, pad(lz4Literals, 4115), LZ4);
    expect(decode(over.bytes, { maxCompressedLength: 4114 })).toEqual(fail('LIMIT', over.lenAt, 'LZ4 page of 4115 bytes exceeds the limit of 4114'));
  });
});

describe('maxTailBytes (device-state span)', () => {
  it('a tail of exactly the limit passes; one byte more fails at the first byte past it', () => {
    const { bytes, marks } = build({});
    const size = bytes.length - marks.tail!;
    const under = decode(bytes, { maxTailBytes: size });
    expect(under.ok && under.events.find((e) => e.type === 'end')).toMatchObject({ tail: { parsed: true } });
    expect(decode(bytes, { maxTailBytes: size - 1 })).toEqual(
      fail('LIMIT', marks.tail! + size - 1, `device state after the last iterable section exceeds the limit of ${size - 1} bytes`),
    );
  });

  it('default 64 MiB: a 64 MiB device section passes, one byte more fails', () => {
    const tail = (n: number) => {
      // one FULL section whose data makes the whole tail n bytes: header 17, footer 5, EOF 1
      const overhead = 1 + 4 + 1 + 3 + 4 + 4 + 5 + 1;
      return new ByteWriter()
        .bytes(fullSection(9, 'big', 0, 1, new Uint8Array(n - overhead)))
        .u8(0)
        .take();
    };
    const under = build({ tail: tail(64 << 20) });
    expect(under.bytes.length - under.marks.tail!).toBe(64 << 20);
    expect(decodeQuick(under.bytes)).toBe('ok');
    const over = build({ tail: tail((64 << 20) + 1) });
    expect(decodeQuick(over.bytes)).toBe(`LIMIT@${over.marks.tail! + (64 << 20)}`);
  });
});

/** One-piece decode, for big streams: "ok" or "CODE@offset". */
function decodeQuick(bytes: Uint8Array, limits: Partial<DecoderLimits> = {}, strict = false): string {
  let warning = '';
  try {
    decodeAll(bytes, (ev) => void (ev.type === 'warning' && (warning = ` warning ${ev.warning.code}@${ev.warning.offset}`)), { limits, strict });
    return `ok${warning}`;
  } catch (e) {
    if (!(e instanceof MigstreamError)) throw e;
    return `${e.code}@${e.offset}`;
  }
}

// With `strict` only: otherwise the trailer is skipped as QEMU 7.2 skips it, and an oversized one is a warning.
describe('maxVmdescBytes (JSON trailer)', () => {
  /** The device tail with a vmdesc padded with spaces to `jsonBytes`, and the offset of its be32 length within the tail. */
  const tailWith = (jsonBytes: number) => {
    const plain = deviceTail(false);
    const json = '{"page_size": 4096, "devices": [{"name": "timer", "instance_id": 0}, {"name": "cpu_common", "instance_id": 0}]}';
    const padded = new TextEncoder().encode(json.slice(0, -1) + ' '.repeat(jsonBytes - json.length) + '}');
    return { tail: new ByteWriter().bytes(plain).u8(6).be32(padded.length).bytes(padded).take(), lenAt: plain.length + 1 };
  };

  it('configured 200: a 200-byte vmdesc passes, 201 bytes fail at its length field', () => {
    const under = build({ tail: tailWith(200).tail });
    const r = decode(under.bytes, { maxVmdescBytes: 200 });
    expect(r.ok && r.events.find((e) => e.type === 'end')).toMatchObject({ tail: { vmdescBytes: 205, parsed: true } });
    const t = tailWith(201);
    const over = build({ tail: t.tail });
    expect(decode(over.bytes, { maxVmdescBytes: 200 }, true)).toEqual(
      fail('LIMIT', over.marks.tail! + t.lenAt, 'vmdesc JSON of 201 bytes exceeds the limit of 200'),
    );
    const lenient = decode(over.bytes, { maxVmdescBytes: 200 });
    expect(lenient.ok && lenient.events.find((e) => e.type === 'warning')).toEqual({
      type: 'warning',
      warning: {
        code: 'LIMIT',
        offset: over.marks.tail! + t.lenAt,
        message: 'damaged vmdesc trailer (QEMU 7.2 skips it): vmdesc JSON of 201 bytes exceeds the limit of 200',
      },
    });
  });

  it('a truncated vmdesc that declares more than the limit fails on the declaration', () => {
    const t = tailWith(201);
    const over = build({ tail: t.tail.subarray(0, t.tail.length - 50) });
    expect(decode(over.bytes, { maxVmdescBytes: 200 }, true)).toEqual(
      fail('LIMIT', over.marks.tail! + t.lenAt, 'vmdesc JSON of 201 bytes exceeds the limit of 200'),
    );
    expect(decode(over.bytes, { maxVmdescBytes: 201 }, true)).toMatchObject({ code: 'TRUNCATED' });
    expect(decodeQuick(over.bytes, { maxVmdescBytes: 201 })).toBe(`ok warning TRUNCATED@${over.bytes.length}`);
  });

  it('default 16 MiB: a 16 MiB vmdesc passes, one byte more fails', () => {
    const under = build({ tail: tailWith(16 << 20).tail });
    expect(decodeQuick(under.bytes)).toBe('ok');
    const t = tailWith((16 << 20) + 1);
    const over = build({ tail: t.tail });
    expect(decodeQuick(over.bytes, {}, true)).toBe(`LIMIT@${over.marks.tail! + t.lenAt}`);
    expect(decodeQuick(over.bytes)).toBe(`ok warning LIMIT@${over.marks.tail! + t.lenAt}`);
  });
});

describe('maxBlockChunk', () => {
  const CHUNKS = encodeManifest([blockChunksEntry(65536)]);
  const varChunk = (length: number, data = true) => {
    let rec = 0;
    const b = build({
      manifest: CHUNKS,
      block: (w, at) => {
        rec = at();
        w.be64(0x01 | 0x10 | (data ? 0 : 0x08))
          .str8('ide0-hd1')
          .be32(length);
        if (data) w.bytes(new Uint8Array(length).fill(1));
      },
    });
    return { bytes: b.bytes, rec, lenAt: rec + 8 + 9 };
  };
  const qemuChunk = () => {
    let rec = 0;
    const b = build({
      block: (w, at) => {
        rec = at();
        w.be64(0x01)
          .str8('ide0-hd1')
          .bytes(new Uint8Array(1 << 20).fill(2));
      },
    });
    return { bytes: b.bytes, rec };
  };

  it("default 1 MiB: QEMU's 1 MiB chunk and a 1 MiB variable chunk pass; a larger variable chunk breaks the format", () => {
    expect(decode(qemuChunk().bytes)).toMatchObject(ok);
    expect(decode(varChunk(1 << 20).bytes)).toMatchObject(ok);
    const over = varChunk((1 << 20) + 512);
    expect(decode(over.bytes)).toEqual(
      fail('BAD_BLOCK_RECORD', over.lenAt, `expected a chunk length of 512..${1 << 20} bytes in whole sectors, found ${(1 << 20) + 512}`),
    );
  });

  it("configured 64 KiB: a 64 KiB chunk passes, 64 KiB + 512 fails at its length; QEMU's 1 MiB chunks fail at the record", () => {
    expect(decode(varChunk(65536).bytes, { maxBlockChunk: 65536 })).toMatchObject(ok);
    const over = varChunk(65536 + 512);
    expect(decode(over.bytes, { maxBlockChunk: 65536 })).toEqual(fail('LIMIT', over.lenAt, 'block chunk of 66048 bytes exceeds the limit of 65536'));
    expect(decode(varChunk(65536 + 512, false).bytes, { maxBlockChunk: 65536 })).toMatchObject(ok); // a zero chunk carries no payload
    const q = qemuChunk();
    expect(decode(q.bytes, { maxBlockChunk: 65536 })).toEqual(fail('LIMIT', q.rec, "QEMU's 1048576-byte block chunk exceeds the limit of 65536"));
  });
});

describe('maxMachineName and the capability count', () => {
  it('default 256: a 256-byte machine name passes, 257 fail at its length', () => {
    expect(decode(build({ machine: str(256) }).bytes)).toMatchObject(ok);
    expect(decode(build({ machine: str(257) }).bytes)).toEqual(fail('LIMIT', 9, 'machine name of 257 bytes exceeds the limit of 256'));
    expect(decode(build({ machine: str(10) }).bytes, { maxMachineName: 9 })).toEqual(fail('LIMIT', 9, 'machine name of 10 bytes exceeds the limit of 9'));
  });

  it('64 capabilities pass, 65 fail (fixed)', () => {
    const caps = (n: number) => Array.from({ length: n }, (_, i) => `c${i}`);
    expect(decode(build({ capabilities: caps(64) }).bytes)).toMatchObject(ok);
    const nameAt = 8 + 1 + 4 + 'pc-i440fx-7.2'.length + 1;
    expect(decode(build({ capabilities: caps(65) }).bytes)).toEqual(fail('LIMIT', nameAt, '65 capabilities in the configuration'));
  });
});

/** A pool whose tasks finish only when released: pages stay in flight until then. */
class HeldPool implements PagePool {
  readonly size = 1;
  private held: (() => void)[] = [];
  run(task: PoolTask): Promise<PoolResult> {
    return new Promise((resolve) => this.held.push(() => resolve(runTask(task))));
  }
  release(): void {
    for (const f of this.held.splice(0)) f();
  }
  async close(): Promise<void> {}
}

/** Whether `p` settles within a few event-loop turns. */
async function settles(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  void p.then(() => (done = true));
  for (let i = 0; i < 10 && !done; i++) await new Promise((r) => setImmediate(r));
  return done;
}

describe('maxInFlight (pages in flight, pool options): enforced by waiting, never an error', () => {
  it('DecompressQueue: with maxInFlight 4, drain() returns at 4 compressed pages pending and waits at 5', async () => {
    for (const [pages, waits] of [
      [4, false],
      [5, true],
    ] as const) {
      const pool = new HeldPool();
      const delivered: number[] = [];
      const q = new DecompressQueue((ev) => ev.type === 'page' && delivered.push(ev.offset), { pool, batchPages: 1, maxInFlight: 4, impl: 'portable' });
      const plain = build({
        blocks: [{ idstr: 'pc.ram', length: 8 * 4096 }],
        part: (w) => {
          for (let i = 0; i < pages; i++)
            w.be64(i * 4096 + 0x08)
              .str8('pc.ram')
              .bytes(page((k) => k ^ i));
        },
      });
      const stream = transcodeBytes(plain.bytes, { compress: { codec: 'lz4', impl: 'portable' } });
      const d = new StreamDecoder(q.handle, { decompress: 'defer' });
      d.push(stream);
      d.end();
      expect(q.pagesInFlight).toBe(pages);
      const drained = q.drain();
      expect(await settles(drained)).toBe(!waits);
      pool.release();
      await drained;
      await q.finish();
      expect(delivered).toEqual(Array.from({ length: pages }, (_, i) => i * 4096));
    }
  });

  it('PooledEncoder: with maxInFlight 4, drain() returns at 4 pages compressing and waits at 5', async () => {
    const spec = resolveSpec({ codec: 'lz4', impl: 'portable' });
    for (const [pages, waits] of [
      [4, false],
      [5, true],
    ] as const) {
      const pool = new HeldPool();
      const out: Uint8Array[] = [];
      const enc = new PooledEncoder((c) => void out.push(c.slice()), { spec, pool, batchPages: 1, maxInFlight: 4 });
      for (let i = 0; i < pages; i++)
        enc.compressPage(
          'pc.ram',
          i * 4096,
          page((k) => k ^ i),
        );
      expect(enc.pagesInFlight).toBe(pages);
      const drained = enc.drain();
      expect(await settles(drained)).toBe(!waits);
      pool.release();
      await drained;
      await enc.finish();
      expect(enc.pagesInFlight).toBe(0);
    }
  });

  it('PooledEncoder: a record waiting in a part-filled chunk batch while more pages than maxInFlight ran ahead does not stall drain()', async () => {
    // the head of the queue is a small chunk (its batch not full, so not sent); the pages after it fill and send
    // batches of their own until more than maxInFlight are queued: drain() must send the chunk's batch, not wait for
    // the pages (which cannot be written before the chunk)
    const spec = resolveSpec({ codec: 'lz4', impl: 'portable' });
    const pool: PagePool = { size: 1, run: async (task: PoolTask) => runTask(task), close: async () => {} };
    const out: Uint8Array[] = [];
    const enc = new PooledEncoder((c) => void out.push(c.slice()), { spec, chunkSpec: spec, pool, batchPages: 2, maxInFlight: 4 });
    const want: Uint8Array[] = [];
    const ref = new StreamEncoder((c) => void want.push(c.slice()), encoderCompressors({ spec, chunkSpec: spec }));
    for (const w of [enc, ref]) {
      w.compressChunk(
        'vd',
        0,
        page((k) => k & 7),
      );
      for (let i = 0; i < 8; i++)
        w.compressPage(
          'pc.ram',
          i * 4096,
          page((k) => (k >> 4) ^ i),
        );
    }
    expect(enc.pagesInFlight).toBe(9);
    const drained = enc.drain();
    for (let i = 0; i < 50 && !(await settles(drained)); i++);
    expect(await settles(drained)).toBe(true);
    await enc.finish();
    ref.flush();
    expect(Buffer.compare(Buffer.concat(out), Buffer.concat(want))).toBe(0);
  });
});
