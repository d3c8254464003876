/**
 * Hostile input on real QEMU bytes: a real fixture stream cut down to a few
 * KB (still complete: its real configuration, MEM_SIZE and page records, an
 * END section, real device sections and a vmdesc) ends in a typed error at
 * every truncation, and decodes the same however it is chunked. Plus the
 * fixes the fuzzer led to (see docs/fuzzing.md).
 */
import { describe, expect, it } from 'vitest';
import { ByteWriter } from '../src/codec/byte-writer.js';
import { MigstreamError } from '../src/codec/errors.js';
import { cutRealStream, RAM_SECTION, SeedWriter, syntheticTail } from '../src/fuzz/corpus.js';
import { chunkPlan, pushPieces } from '../src/fuzz/targets.js';
import { Rng } from '../src/fuzz/rng.js';
import { StreamDecoder, decodeAll } from '../src/stream/decoder.js';
import type { StreamEvent } from '../src/stream/events.js';
import { diskFileName, ramBlockFileName } from '../src/stream/files.js';
import { transcodeBytes } from '../src/stream/transcode.js';
import { fixtureFile, hasFixtureFile } from './support/fixtures.js';

const name = ['plain', 'xbzrle-hit', 'xbzrle-miss', 'compress-l1'].find((n) => hasFixtureFile(n, 'stream.bin'));

function small(): Uint8Array {
  if (!name) throw new Error('no real-QEMU fixture stream is committed');
  return cutRealStream(fixtureFile(name, 'stream.bin'), 5000)!;
}

/** Events as comparable lines (device state joined: it arrives in as many pieces as chunks). */
function run(bytes: Uint8Array, chunks?: number[]): { events: string[]; error?: MigstreamError } {
  const events: string[] = [];
  let device: number[] = [];
  const d = new StreamDecoder((ev: StreamEvent) => {
    if (ev.type === 'device-state') {
      device.push(...ev.bytes);
      return;
    }
    if (device.length) events.push(`device-state ${Buffer.from(device).toString('hex')}`);
    device = [];
    events.push(JSON.stringify(ev, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v)));
  });
  try {
    pushPieces(d, bytes, chunks);
  } catch (e) {
    if (!(e instanceof MigstreamError)) throw e;
    return { events, error: e };
  }
  return { events };
}

describe(`a real QEMU stream (${name ?? 'none'}) cut to a few KB`, () => {
  const bytes = small();
  const full = run(bytes);
  const eofEnd = (() => {
    // The EOF byte is the 0x00 right before `06 be32(len) {`, with the JSON running to the end.
    for (let i = bytes.length - 7; i > 0; i--) {
      const len = new DataView(bytes.buffer, bytes.byteOffset).getUint32(i + 2);
      if (bytes[i] === 0x00 && bytes[i + 1] === 0x06 && i + 6 + len === bytes.length) return i + 1;
    }
    return -1;
  })();

  it('is small, complete and decodes with its vmdesc', () => {
    expect(bytes.length).toBeLessThan(16 * 1024);
    expect(full.error).toBeUndefined();
    const end = JSON.parse(full.events.at(-1)!) as Extract<StreamEvent, { type: 'end' }>;
    expect(end.type).toBe('end');
    expect(end.tail.vmdesc).toBeDefined();
    expect(end.tail.devices.length).toBeGreaterThan(1);
    expect(full.events.filter((e) => e.includes('"type":"page"')).length).toBeGreaterThan(3);
    expect(eofEnd).toBeGreaterThan(0);
  });

  it('ends every strict prefix in a typed error at or before the cut (strict), except the one ending right after EOF', () => {
    const codes = new Set<string>();
    for (let n = 0; n < bytes.length; n++) {
      let err: unknown;
      let warnings = 0;
      try {
        decodeAll(bytes.subarray(0, n), () => {}, { strict: true });
      } catch (e) {
        err = e;
      }
      if (n > eofEnd) {
        // without strict, a cut inside the vmdesc trailer is a warning: QEMU 7.2 loads such a stream
        decodeAll(bytes.subarray(0, n), (ev) => void (ev.type === 'warning' && warnings++));
        expect(warnings, `prefix of ${n} bytes`).toBe(1);
      }
      if (n === eofEnd) {
        expect(err, 'the stream cut right after EOF is a stream without vmdesc').toBeUndefined();
        continue;
      }
      expect(err, `prefix of ${n} bytes`).toBeInstanceOf(MigstreamError);
      const m = err as MigstreamError;
      expect(m.detail, `prefix of ${n} bytes`).not.toMatch(/^internal error/);
      expect(m.offset, `prefix of ${n} bytes`).toBeLessThanOrEqual(n);
      codes.add(m.code);
    }
    expect([...codes]).toContain('TRUNCATED');
  });

  it('gives the same events for random chunk boundaries as for one buffer, and the same error for cut streams', () => {
    const r = new Rng(6);
    for (let i = 0; i < 60; i++) {
      const plan = chunkPlan(r.u32(), bytes.length);
      expect(run(bytes, plan)).toEqual(full);
      const cut = bytes.subarray(0, r.int(bytes.length));
      const one = run(cut);
      const chunked = run(cut, chunkPlan(r.u32(), cut.length));
      expect(chunked.events).toEqual(one.events);
      expect([chunked.error?.code, chunked.error?.offset]).toEqual([one.error?.code, one.error?.offset]);
    }
    const bytewise = Array.from({ length: bytes.length }, () => 1);
    expect(run(bytes, bytewise)).toEqual(full);
  });
});

describe('fixes from fuzzing', () => {
  it('rejects names that are not UTF-8 instead of decoding them lossily', () => {
    const w = new SeedWriter().header().configuration('pc-i440fx-7.2');
    w.start(RAM_SECTION);
    w.w
      .be64(4096 + 0x04)
      .u8(3)
      .bytes(Uint8Array.of(0x70, 0xff, 0x72))
      .be64(4096);
    const e = (() => {
      try {
        decodeAll(w.take(), () => {});
      } catch (x) {
        return x as MigstreamError;
      }
    })();
    expect(e).toBeInstanceOf(MigstreamError);
    expect(e!.code).toBe('BAD_RAM_RECORD');
    expect(e!.offset).toBe(52); // the name's first byte: 8 header + 18 configuration + 17 START + 8 MEM_SIZE word + 1 length
    expect(e!.message).toContain('p\\xffr');
  });

  it('rejects block chunks whose header or end passes 2^53; a PROGRESS or EOS header there is accepted, as QEMU 7.2 does', () => {
    const stream = (word: number, hi = 0): Uint8Array => {
      const w = new ByteWriter().be32(0x5145564d).be32(3).u8(1).be32(1).str8('block').be32(0).be32(1);
      w.be32(hi).be32(word).str8('d0');
      return w.u8(0).take();
    };
    const codeOf = (b: Uint8Array): string => {
      try {
        decodeAll(b, () => {});
        return 'ok';
      } catch (e) {
        return (e as MigstreamError).code;
      }
    };
    expect(codeOf(stream(0x01, 0x200000))).toBe('BAD_BLOCK_RECORD'); // a chunk with a header of 2^53
    expect(codeOf(stream(0xfffffe00 | 0x09, 0x1fffff))).toBe('BAD_BLOCK_RECORD'); // zero chunk ending past 2^53
    // PROGRESS and EOS ignore the sector bits: QEMU prints (int)(header >> 9) and goes on
    const w = new ByteWriter().be32(0x5145564d).be32(3).u8(1).be32(1).str8('block').be32(0).be32(1);
    w.be32(0x80200000)
      .be32((77 << 9) | 0x04)
      .be32(0xffffffff)
      .be32(0xfffffe00 | 0x02)
      .u8(0x7e)
      .be32(1)
      .u8(0);
    const events: StreamEvent[] = [];
    decodeAll(w.take(), (ev) => events.push(ev));
    expect(events.filter((e) => e.type === 'block-progress' || e.type === 'block-eos')).toEqual([
      { type: 'block-progress', percent: 77 },
      { type: 'block-eos' },
    ]);
  });

  it('names extract files within NAME_MAX, distinct for distinct long names', () => {
    const a = 'd'.repeat(255);
    const b = `${'d'.repeat(254)}e`;
    const u = 'ü'.repeat(120);
    for (const f of [ramBlockFileName(a), diskFileName(a), ramBlockFileName(u)]) expect(Buffer.byteLength(f)).toBeLessThanOrEqual(255);
    expect(ramBlockFileName(a)).not.toBe(ramBlockFileName(b));
    expect(ramBlockFileName('pc.ram')).toBe('pc.ram.bin'); // short names as before
    expect(diskFileName('ide0-hd1')).toBe('ide0-hd1.img');
  });

  it('does not re-parse a large MEM_SIZE on every small chunk (it was O(n²): 30× slower in 64-byte pieces)', () => {
    const w = new SeedWriter().header().configuration('pc-i440fx-7.2');
    const blocks = Array.from({ length: 1024 }, (_, i) => ({ idstr: String(i).padStart(255, 'x'), length: 4096 }));
    const bytes = w.start(RAM_SECTION).memSize(blocks).eos().footer(2).raw(syntheticTail(false)).take();
    const time = (chunk: number): number => {
      const t0 = performance.now();
      const d = new StreamDecoder(() => {});
      for (let i = 0; i < bytes.length; i += chunk) d.push(bytes.subarray(i, i + chunk));
      d.end();
      return performance.now() - t0;
    };
    time(bytes.length); // warm up
    const whole = Math.min(time(bytes.length), time(bytes.length));
    const pieces = Math.min(time(64), time(64));
    expect(pieces).toBeLessThan(8 * whole + 100);
  });

  it('refuses to transcode a stream whose target page size is not its own, with a typed error', () => {
    const w = new SeedWriter(1024).header().configuration('virt-7.2', { pageBits: 10 });
    w.start(RAM_SECTION)
      .memSize([{ idstr: 'mach-virt.ram', length: 2048 }])
      .eos()
      .footer(2);
    w.part(2).page('mach-virt.ram', 0, new Uint8Array(1024).fill(1)).eos().footer(2).raw(syntheticTail(false));
    const bytes = w.take();
    expect(() => transcodeBytes(bytes, { xbzrle: { cacheBytes: 1 << 16 } })).toThrow(/target page size is 1024 bytes.*pageSize: 1024/);
    // With the page size given, it transcodes.
    const out = transcodeBytes(bytes, { pageSize: 1024 });
    expect(() => decodeAll(out, () => {})).not.toThrow();
  });
});
