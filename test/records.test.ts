import { describe, expect, it } from 'vitest';
import { ByteWriter } from '../src/codec/byte-writer.js';
import { MigstreamError } from '../src/codec/errors.js';
import { StreamDecoder, decodeAll } from '../src/stream/decoder.js';
import type { PageEvent, StreamEvent } from '../src/stream/events.js';
import { RamImage } from '../src/stream/ram-image.js';
import { transcodeBytes } from '../src/stream/transcode.js';
import { compressedRecord, decodeEvents, deviceTail, page, sameBytes, smallStream } from './support/build.js';

const hex = (s: string) =>
  Uint8Array.from(
    s
      .replace(/\s+/g, '')
      .match(/../g)!
      .map((b) => parseInt(b, 16)),
  );
const HEADER = '5145564d 00000003';
const CONFIG = `07 0000000d ${Buffer.from('pc-i440fx-7.2').toString('hex')}`;
const RAM_START = `01 00000002 03 ${Buffer.from('ram').toString('hex')} 00000000 00000004`;
const str8 = (s: string) => `${s.length.toString(16).padStart(2, '0')}${Buffer.from(s).toString('hex')}`;
const MEM_SIZE_2P = `00000000 00002004 ${str8('pc.ram')} 0000000000002000`; // one block of 2 pages
const EOS = '0000000000000010';
const FOOTER = '7e 00000002';

function errorOf(bytes: Uint8Array, strict = false): MigstreamError {
  try {
    decodeAll(bytes, () => {}, { strict });
  } catch (e) {
    expect(e).toBeInstanceOf(MigstreamError);
    return e as MigstreamError;
  }
  throw new Error('decoded without error');
}

/** A stream prefix up to and including the RAM START section, then `records` inside a PART. */
function withPart(records: string): Uint8Array {
  return hex(`${HEADER} ${CONFIG} ${RAM_START} ${MEM_SIZE_2P} ${EOS} ${FOOTER} 02 00000002 ${records}`);
}

describe('header and configuration', () => {
  it('reads the verified start of a real stream', () => {
    const events = decodeEvents(hex(`${HEADER} ${CONFIG} ${RAM_START} ${MEM_SIZE_2P} ${EOS} ${FOOTER} 00`));
    expect(events.map((e) => e.type)).toEqual(['header', 'configuration', 'section', 'ram-blocks', 'iteration-end', 'section-footer', 'device-state', 'end']);
    const cfg = events[1] as Extract<StreamEvent, { type: 'configuration' }>;
    expect(cfg.configuration.machine).toBe('pc-i440fx-7.2');
    expect(cfg.configuration.raw).toEqual(hex(CONFIG));
    expect((events[3] as Extract<StreamEvent, { type: 'ram-blocks' }>).blocks).toEqual([{ idstr: 'pc.ram', length: 8192 }]);
  });

  it('reads the x-ignore-shared capabilities subsection and the per-block address it adds to MEM_SIZE', () => {
    const caps = `05 ${str8('configuration/capabilities')} 00000001 00000001 ${str8('x-ignore-shared')}`;
    const mem = `00000000 00002004 ${str8('pc.ram')} 0000000000002000 0000000000100000`;
    const events = decodeEvents(hex(`${HEADER} ${CONFIG} ${caps} ${RAM_START} ${mem} ${EOS} ${FOOTER} 00`));
    const cfg = events.find((e) => e.type === 'configuration') as Extract<StreamEvent, { type: 'configuration' }>;
    expect(cfg.configuration.capabilities).toEqual(['x-ignore-shared']);
    const blocks = events.find((e) => e.type === 'ram-blocks') as Extract<StreamEvent, { type: 'ram-blocks' }>;
    expect(blocks.blocks).toEqual([{ idstr: 'pc.ram', length: 8192, mrAddr: 0x100000 }]);
  });

  it('rejects a bad magic, the obsolete v2 format and unknown versions', () => {
    expect(errorOf(hex('5145564e 00000003'))).toMatchObject({ code: 'BAD_MAGIC', offset: 0 });
    const v2 = errorOf(hex('5145564d 00000002'));
    expect(v2).toMatchObject({ code: 'BAD_VERSION', offset: 4 });
    expect(v2.message).toContain('SaveVM v2 format is obsolete');
    expect(errorOf(hex('5145564d 00000004'))).toMatchObject({ code: 'BAD_VERSION', offset: 4 });
  });

  it('rejects an unknown configuration subsection and an unknown top-level type', () => {
    expect(errorOf(hex(`${HEADER} ${CONFIG} 05 ${str8('configuration/nope')} 00000001 00`)).code).toBe('BAD_CONFIGURATION');
    const e = errorOf(hex(`${HEADER} ${CONFIG} 09`));
    expect(e).toMatchObject({ code: 'BAD_SECTION', offset: 26 });
    expect(e.message).toContain('Unknown savevm section type 9');
  });
});

describe('RAM records', () => {
  it('decodes ZERO, PAGE, CONTINUE, XBZRLE, COMPRESS_PAGE and EOS into exact RAM', () => {
    const ram = new RamImage();
    const kinds: string[] = [];
    decodeAll(smallStream(), (ev) => {
      if (ev.type === 'ram-blocks') ram.setBlocks(ev.blocks);
      if (ev.type === 'page') {
        kinds.push(`${ev.kind}@${ev.block.idstr}:${ev.offset}`);
        ram.apply(ev);
      }
    });
    expect(kinds).toEqual(['zero@pc.ram:0', 'normal@pc.ram:4096', 'normal@vga:0', 'xbzrle@vga:0', 'normal@vga:4096', 'compressed@pc.ram:8192']);
    const expectedVga0 = page((i) => 255 - i);
    expectedVga0.set([0xaa, 0xbb], 0);
    expectedVga0[100] = 0xcc;
    expect(ram.page('vga', 0, 4096)).toEqual(expectedVga0);
    expect(ram.page('vga', 4096, 4096)).toEqual(page((i) => i ^ 0x5a));
    expect(ram.page('pc.ram', 4096, 4096)).toEqual(page((i) => i * 7));
    expect(ram.page('pc.ram', 8192, 4096)).toEqual(page((i) => (i >> 4) & 0xff));
    expect(ram.page('pc.ram', 12288, 4096)).toEqual(new Uint8Array(4096));
  });

  it('counts wire bytes per record exactly', () => {
    const events = decodeEvents(smallStream()).filter((e): e is PageEvent => e.type === 'page');
    // ZERO with idstr: 8 + 1+6 + 1; PAGE with CONTINUE: 8 + 4096; PAGE naming "vga": 8 + 4 + 4096; XBZRLE: 8 + 3 + 7
    expect(events.slice(0, 4).map((e) => e.wireBytes)).toEqual([16, 4104, 4108, 18]);
  });

  it('offset bits at or above 2^53: ignored in EOS as QEMU ignores them, an illegal offset in a page record', () => {
    // EOS with a huge offset ends the section like any EOS
    const eos = withPart(`80000000 00000010 ${FOOTER} 00`);
    expect(decodeEvents(eos).filter((e) => e.type === 'iteration-end')).toHaveLength(2);
    const e = errorOf(withPart(`00400000 00001008 ${str8('pc.ram')} ${'00'.repeat(4096)}`));
    expect(e).toMatchObject({ code: 'BAD_OFFSET', detail: 'Illegal RAM offset 0x40000000001000: block is 0x2000 bytes' });
    expect(e.context.ramBlock).toBe('pc.ram');
    expect(errorOf(withPart(`00400000 00001004`))).toMatchObject({ code: 'LIMIT' });
  });

  it('keeps CONTINUE across sections and rejects it with no previous block', () => {
    const ok = decodeEvents(withPart(`0000000000000002 ${str8('pc.ram')} 00 ${EOS} ${FOOTER} 02 00000002 0000000000001022 07 ${EOS} ${FOOTER} 00`));
    const pages = ok.filter((e): e is PageEvent => e.type === 'page');
    expect(pages.map((p) => [p.block.idstr, p.offset, p.fill])).toEqual([
      ['pc.ram', 0, 0],
      ['pc.ram', 4096, 7],
    ]);
    const e = errorOf(withPart(`0000000000000022 00 ${EOS}`));
    expect(e.code).toBe('BAD_RAM_RECORD');
    expect(e.message).toContain('Ack, bad migration stream!');
    expect(e.offset).toBe(8 + 18 + 17 + 23 + 8 + 5 + 5);
  });

  it('rejects unknown RAMBlocks, offsets outside the block, and flag combinations QEMU rejects', () => {
    expect(errorOf(withPart(`0000000000000002 ${str8('pc.rom')} 00`))).toMatchObject({ code: 'UNKNOWN_RAMBLOCK', detail: "Can't find block pc.rom" });
    // QEMU's order for flags with a page bit: the block, then the offset, then the combination
    expect(errorOf(withPart(`000000000000000a ${str8('pc.rom')} 00`))).toMatchObject({ code: 'UNKNOWN_RAMBLOCK', detail: "Can't find block pc.rom" });
    expect(errorOf(withPart(`000000000000400a ${str8('pc.ram')} 00`))).toMatchObject({
      code: 'BAD_OFFSET',
      detail: 'Illegal RAM offset 0x4000: block is 0x2000 bytes',
    });
    expect(errorOf(withPart(`0000000000002002 ${str8('pc.ram')} 00`))).toMatchObject({ code: 'BAD_OFFSET' });
    const combo = errorOf(withPart(`000000000000000a ${str8('pc.ram')} 00`));
    expect(combo.message).toContain('Unknown combination of migration flags: 0xa');
    expect(errorOf(withPart('0000000000000001'))).toMatchObject({ code: 'BAD_RAM_RECORD' });
    expect(errorOf(withPart('0000000000000080'))).toMatchObject({ code: 'UNSUPPORTED' });
  });

  it('checks the XBZRLE encoding byte, length and grammar like QEMU', () => {
    expect(errorOf(withPart(`0000000000000040 ${str8('pc.ram')} 02 0001 00`)).message).toContain('wrong compression');
    expect(errorOf(withPart(`0000000000000040 ${str8('pc.ram')} 01 1001`)).message).toContain('len overflow');
    // nzrun past the declared length
    expect(errorOf(withPart(`0000000000000040 ${str8('pc.ram')} 01 0003 00 05 aa ${EOS}`)).code).toBe('XBZRLE_DECODE');
  });

  it('rejects corrupt or oversized compressed pages', () => {
    expect(errorOf(withPart(`0000000000000100 ${str8('pc.ram')} 0000100f`)).message).toContain('Invalid compressed data length: 4111');
    const rec = compressedRecord(
      0,
      page((i) => i),
      'pc.ram',
    );
    rec[rec.length - 1]! ^= 1; // Adler-32 mismatch
    const bytes = new Uint8Array([...withPart(''), ...rec]);
    expect(errorOf(bytes).code).toBe('DECOMPRESS');
    // a zlib stream holding more than one page
    const big = compressedRecord(0, new Uint8Array(8192), 'pc.ram');
    expect(errorOf(new Uint8Array([...withPart(''), ...big])).code).toBe('DECOMPRESS');
  });

  it('accepts and reports the 8.1+ multifd flush record', () => {
    const events = decodeEvents(withPart(`0000000000000200 ${EOS} ${FOOTER} 00`));
    expect(events.some((e) => e.type === 'ram-flush')).toBe(true);
  });

  it('rejects MEM_SIZE lists that do not add up', () => {
    const mem = `00000000 00002004 ${str8('pc.ram')} 0000000000003000`;
    expect(errorOf(hex(`${HEADER} ${CONFIG} ${RAM_START} ${mem}`)).code).toBe('BAD_RAM_RECORD');
  });
});

describe('sections, footers and commands', () => {
  it("rejects ram, block and dirty-bitmap sections of an instance other than 0, in QEMU's words", () => {
    const e = errorOf(hex(`${HEADER} ${CONFIG} 01 00000002 03 ${Buffer.from('ram').toString('hex')} 00000001 00000004`));
    expect(e).toMatchObject({ code: 'BAD_SECTION', offset: 26, detail: "Unknown savevm section or instance 'ram' 1" });
  });

  it('rejects a footer with the wrong id and a PART for an unknown section', () => {
    const e = errorOf(hex(`${HEADER} ${CONFIG} ${RAM_START} ${MEM_SIZE_2P} ${EOS} 7e 00000003`));
    expect(e.message).toContain('Mismatched section id in footer for ram -- read 0x3 expected 0x2');
    expect(errorOf(hex(`${HEADER} ${CONFIG} 02 00000009`)).message).toContain('Unknown savevm section 9');
  });

  it('reads commands and validates their lengths', () => {
    const events = decodeEvents(hex(`${HEADER} ${CONFIG} 08 0001 0000 08 0002 0004 00000001 00`));
    expect(events.filter((e) => e.type === 'command').map((e) => (e as { name: string }).name)).toEqual(['OPEN_RETURN_PATH', 'PING']);
    expect(errorOf(hex(`${HEADER} ${CONFIG} 08 0002 0002 0000`)).message).toContain('PING received bad length 2');
    expect(errorOf(hex(`${HEADER} ${CONFIG} 08 0000 0000`)).code).toBe('BAD_COMMAND');
    // PACKAGED's 16 bytes follow the record, outside its length (postcopy: test/postcopy-commands.test.ts); COLO stays unsupported.
    expect(errorOf(hex(`${HEADER} ${CONFIG} 08 0007 0004 00000010`)).code).toBe('TRUNCATED');
    expect(errorOf(hex(`${HEADER} ${CONFIG} 08 0008 0000`)).code).toBe('UNSUPPORTED');
  });

  it('splits the device tail with the vmdesc, and without it', () => {
    for (const vmdesc of [true, false]) {
      const end = decodeEvents(smallStream({ vmdesc })).at(-1) as Extract<StreamEvent, { type: 'end' }>;
      expect(end.tail.parsed).toBe(true);
      expect(end.tail.devices.map((d) => [d.idstr, d.instanceId, d.versionId, d.size])).toEqual([
        ['timer', 0, 2, 13],
        ['cpu_common', 0, 1, 5],
      ]);
      expect(end.tail.vmdesc !== undefined).toBe(vmdesc);
    }
  });

  it('a vmdesc that names other devices than the stream has: a warning (split without it), strict: an error', () => {
    const s = smallStream();
    const text = Buffer.from(s).toString('latin1').replace('"cpu_common", "instance_id": 0', '"cpu_common", "instance_id": 1');
    const bytes = Uint8Array.from(Buffer.from(text, 'latin1'));
    expect(errorOf(bytes, true).code).toBe('BAD_SECTION');
    const events = decodeEvents(bytes);
    const warnings = events.filter((e) => e.type === 'warning');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ warning: { code: 'BAD_SECTION' } });
    const end = events.at(-1) as Extract<StreamEvent, { type: 'end' }>;
    const reference = decodeEvents(s).at(-1) as Extract<StreamEvent, { type: 'end' }>;
    expect(end.tail.vmdesc).toBeUndefined();
    expect(end.tail.devices).toEqual(reference.tail.devices);
  });
});

describe('block records', () => {
  function blockStream(records: (w: ByteWriter) => void): Uint8Array {
    const w = new ByteWriter().be32(0x5145564d).be32(3).u8(1).be32(1).str8('block').be32(0).be32(1);
    records(w);
    return w.take();
  }

  it('decodes DEVICE_BLOCK with 1 MiB, ZERO_BLOCK, PROGRESS and EOS', () => {
    const chunk = page((i) => i >> 10, 1 << 20);
    const bytes = blockStream((w) => {
      w.be64((0 << 9) | 0x04); // PROGRESS 0
      w.be64((39 << 9) | 0x04);
      w.be64((0 << 9) | 0x01)
        .str8('ide0-hd1')
        .bytes(chunk);
      w.be64((2048 << 9) | 0x09).str8('ide0-hd1');
      w.be64(0x02).u8(0x7e).be32(1).u8(0);
    });
    for (const size of [Infinity, 65537]) {
      const events = decodeEvents(bytes, size);
      const chunks = events.filter((e) => e.type === 'block-chunk') as Extract<StreamEvent, { type: 'block-chunk' }>[];
      expect(chunks.map((c) => [c.device, c.sector, c.zero, c.data.length])).toEqual([
        ['ide0-hd1', 0, false, 1 << 20],
        ['ide0-hd1', 2048, true, 0],
      ]);
      expect(sameBytes(chunks[0]!.data, chunk)).toBe(true);
      expect(events.filter((e) => e.type === 'block-progress').map((e) => (e as { percent: number }).percent)).toEqual([0, 39]);
    }
  });

  it('rejects unknown block flags like QEMU', () => {
    const e = errorOf(blockStream((w) => w.be64(0x10)));
    expect(e.message).toContain('Unknown block migration flags: 0x10');
    expect(e.context.section).toBe('block');
  });
});

describe('incremental decoding', () => {
  it('gives the same events for any chunking, down to one byte at a time', () => {
    const bytes = smallStream();
    const whole = decodeEvents(bytes);
    for (const size of [1, 2, 3, 7, 64, 4099]) expect(decodeEvents(bytes, size)).toEqual(whole);
  });

  it('ends every strict prefix of a stream in a typed error (strict), and a prefix cut inside the vmdesc in a warning', () => {
    const bytes = smallStream();
    // The one exception: a stream cut right after EOF is a complete stream without vmdesc.
    const eofEnd = bytes.length - (deviceTail().length - deviceTail(false).length);
    for (let n = 0; n < bytes.length; n++) {
      if (n === eofEnd) continue;
      // before the trailer both modes run the same code: the lenient one is checked where they differ
      for (const strict of n > eofEnd ? [true, false] : [true]) {
        const warnings: StreamEvent[] = [];
        const d = new StreamDecoder((ev) => ev.type === 'warning' && warnings.push(ev), { strict });
        let err: unknown;
        try {
          d.push(bytes.subarray(0, n));
          d.end();
        } catch (e) {
          err = e;
        }
        if (!strict && n > eofEnd) {
          // QEMU 7.2 loads a stream whose vmdesc trailer is cut short
          expect(err, `prefix of ${n} bytes`).toBeUndefined();
          expect(warnings, `prefix of ${n} bytes`).toEqual([{ type: 'warning', warning: expect.objectContaining({ code: 'TRUNCATED', offset: n }) }]);
          continue;
        }
        expect(err, `prefix of ${n} bytes`).toBeInstanceOf(MigstreamError);
        expect((err as MigstreamError).offset).toBeLessThanOrEqual(n);
      }
    }
  });

  it('accepts the stream cut right after EOF, as a stream whose vmdesc was suppressed', () => {
    const cut = smallStream().subarray(0, smallStream().length - (deviceTail().length - deviceTail(false).length));
    const end = decodeEvents(cut).at(-1) as Extract<StreamEvent, { type: 'end' }>;
    expect(end.tail.vmdesc).toBeUndefined();
    expect(end.tail.devices).toHaveLength(2);
  });

  it('bytes after the vmdesc: a warning (QEMU 7.2 stops reading after it), strict: TRAILING_DATA', () => {
    const bytes = new Uint8Array([...smallStream(), 0]);
    expect(errorOf(bytes, true)).toMatchObject({ code: 'TRAILING_DATA', offset: bytes.length - 1 });
    expect(decodeEvents(bytes).filter((e) => e.type === 'warning')).toEqual([
      { type: 'warning', warning: expect.objectContaining({ code: 'TRAILING_DATA', offset: bytes.length - 1 }) },
    ]);
  });

  it('rejects bytes pushed after end()', () => {
    const d = new StreamDecoder(() => {});
    d.push(smallStream());
    d.end();
    expect(() => d.push(Uint8Array.of(0))).toThrow(expect.objectContaining({ code: 'TRAILING_DATA' }));
  });

  it('stays failed after an error', () => {
    const d = new StreamDecoder(() => {});
    expect(() => d.push(hex('00000000 00000003'))).toThrow(MigstreamError);
    expect(() => d.push(hex('00'))).toThrow(/expected magic/);
  });
});

describe('transcode', () => {
  it('turns every page into ZERO or PAGE with the same final RAM, keeping device state verbatim', () => {
    const input = smallStream();
    const out = transcodeBytes(input);
    const ram = (bytes: Uint8Array) => {
      const img = new RamImage();
      const kinds = new Set<string>();
      decodeAll(bytes, (ev) => {
        if (ev.type === 'ram-blocks') img.setBlocks(ev.blocks);
        if (ev.type === 'page') {
          kinds.add(ev.kind);
          img.apply(ev);
        }
      });
      return { img, kinds };
    };
    const a = ram(input);
    const b = ram(out);
    expect([...b.kinds].sort()).toEqual(['normal', 'zero']);
    for (const id of ['pc.ram', 'vga']) expect(b.img.blocks.get(id)).toEqual(a.img.blocks.get(id));
    expect(out.subarray(out.length - deviceTail().length)).toEqual(deviceTail());
    expect(transcodeBytes(out)).toEqual(out); // plain QEMU records are a fixed point
  });

  it('preserves block records byte for byte', () => {
    const w = new ByteWriter().be32(0x5145564d).be32(3).u8(1).be32(1).str8('block').be32(0).be32(1);
    w.be64(0x04)
      .be64((2048 << 9) | 0x09)
      .str8('d0')
      .be64(0x01)
      .str8('d0')
      .bytes(page((i) => i * 3, 1 << 20))
      .be64(0x02);
    w.u8(0x7e).be32(1).u8(0);
    const bytes = w.take();
    expect(sameBytes(transcodeBytes(bytes), bytes)).toBe(true);
  });
});

describe('dirty-bitmap section', () => {
  function dbmStream(records: (w: ByteWriter) => void): Uint8Array {
    const w = new ByteWriter().be32(0x5145564d).be32(3).u8(1).be32(5).str8('dirty-bitmap').be32(0).be32(1);
    records(w);
    return w.take();
  }

  it('reads START, BITS (zeroes and data), COMPLETE and EOS, and transcodes them verbatim', () => {
    const bytes = dbmStream((w) => {
      w.u8(0x10 | 0x08 | 0x04)
        .str8('drive0')
        .str8('bitmap0')
        .be32(65536)
        .u8(0x03); // START enabled+persistent
      w.u8(0x01).u8(0x7e).be32(5); // EOS, footer
      w.u8(0x03).be32(5); // END
      w.u8(0x40 | 0x02)
        .be64(0)
        .be32(2048); // BITS, zeroes, names reused
      w.u8(0x80 | 0x00)
        .u8(0x40)
        .be64(2048)
        .be32(2048)
        .be64(32)
        .bytes(page((i) => i, 32)); // 2-byte flags
      w.u8(0x20).u8(0x01); // COMPLETE, EOS
      w.u8(0x7e).be32(5).u8(0);
    });
    const recs = decodeEvents(bytes)
      .filter((e): e is Extract<StreamEvent, { type: 'dirty-bitmap' }> => e.type === 'dirty-bitmap')
      .map((e) => e.record);
    expect(recs.map((r) => [r.kind, r.node, r.bitmap, r.granularity, r.startSector, r.sectors, r.data?.length])).toEqual([
      ['start', 'drive0', 'bitmap0', 65536, undefined, undefined, undefined],
      ['eos', undefined, undefined, undefined, undefined, undefined, undefined],
      ['bits', undefined, undefined, undefined, 0, 2048, undefined],
      ['bits', undefined, undefined, undefined, 2048, 2048, 32],
      ['complete', undefined, undefined, undefined, undefined, undefined, undefined],
      ['eos', undefined, undefined, undefined, undefined, undefined, undefined],
    ]);
    expect(recs[3]!.flags).toBe(0x8040);
    expect(sameBytes(transcodeBytes(bytes), bytes)).toBe(true);
    for (const size of [1, 3]) expect(decodeEvents(bytes, size).filter((e) => e.type === 'dirty-bitmap')).toHaveLength(6);
  });

  it("rejects what QEMU's loader rejects: reserved start flags, oversized buffers, empty aliases", () => {
    const reserved = dbmStream((w) => w.u8(0x1c).str8('d').str8('b').be32(512).u8(0x08));
    expect(errorOf(reserved).message).toContain('Unknown flags in migrated dirty bitmap header');
    const big = dbmStream((w) => w.u8(0x4c).str8('d').str8('b').be64(0).be32(8).be64(10241));
    expect(errorOf(big)).toMatchObject({ code: 'LIMIT' });
    const empty = dbmStream((w) => w.u8(0x18).u8(0));
    expect(errorOf(empty).message).toContain('Unable to read node alias string');
  });

  it("checks a BITS buffer against the granularity its START gave, allowing QEMU's padding to 32 bytes", () => {
    // 2048 sectors (1 MiB) at 4 KiB granularity: 256 bits, 32 bytes; at 64 KiB: 16 bits, 8 bytes padded to 32
    const bits = (granularity: number, size: number) =>
      dbmStream((w) => {
        w.u8(0x1c).str8('d').str8('b').be32(granularity).u8(0x01).u8(0x01).u8(0x7e).be32(5).u8(0x03).be32(5);
        w.u8(0x40).be64(0).be32(2048).be64(size).bytes(new Uint8Array(size));
        w.u8(0x21).u8(0x7e).be32(5).u8(0);
      });
    expect(() => decodeEvents(bits(4096, 32))).not.toThrow();
    expect(() => decodeEvents(bits(65536, 32))).not.toThrow();
    for (const [granularity, size] of [
      [4096, 24],
      [4096, 64],
      [65536, 0],
      [65536, 40],
    ]) {
      const bytes = bits(granularity!, size!);
      const e = errorOf(bytes);
      expect(e.code).toBe('BAD_SECTION');
      expect(e.message).toContain("Migrated bitmap granularity doesn't match");
      // the offset names the be64 buffer size: 8 bytes before the bits
      const sizeAt = bytes.length - 1 - 4 - 1 - 1 - size! - 8;
      expect(e.offset).toBe(sizeAt);
    }
  });
});
