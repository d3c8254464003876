import { describe, expect, it } from 'vitest';
import { loadFixture, summarizeStream } from '../fixtures/qemu/lib.mjs';
import { MigstreamError } from '../src/codec/errors.js';
import { encodeCommand, encodePackaged, encodeReturnPath } from '../src/stream/command-encoder.js';
import { decodeAll, StreamDecoder } from '../src/stream/decoder.js';
import type { StreamEvent } from '../src/stream/events.js';
import { PreemptDecoder } from '../src/stream/preempt.js';
import { ReturnPathDecoder, type ReturnPathEvent } from '../src/stream/return-path.js';
import { transcodeBytes } from '../src/stream/transcode.js';
import { StreamEncoder } from '../src/stream/encoder.js';
import { RamImage } from '../src/stream/ram-image.js';
import { VerifyingRamStore } from '../src/stream/digest.js';
import { WrittenPages } from '../src/stream/discard.js';
import { page, RAM } from './support/build.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const cat = (...p: Uint8Array[]) => new Uint8Array(Buffer.concat(p));

function events(bytes: Uint8Array): StreamEvent[] {
  const out: StreamEvent[] = [];
  decodeAll(bytes, (ev) => out.push(ev.type === 'command' ? { ...ev, payload: ev.payload.slice() } : ev));
  return out;
}

function failure(f: () => void): MigstreamError {
  try {
    f();
  } catch (e) {
    if (e instanceof MigstreamError) return e;
    throw e;
  }
  throw new Error('expected a MigstreamError');
}

/** QEMU's plain fixture reshaped as postcopy_start writes it: the device sections move into PACKAGED. */
function postcopyShaped() {
  const stream = loadFixture('plain').stream;
  const full = summarizeStream(stream).firstFullOffset;
  const end = events(stream).find((e) => e.type === 'end')!;
  if (end.type !== 'end') throw new Error('no end');
  const last = end.tail.devices[end.tail.devices.length - 1]!;
  const devices = stream.subarray(full, last.offset + headerSize(stream, last.offset) + last.size + 5);
  const nested = cat(encodeCommand({ name: 'POSTCOPY_LISTEN' }), devices, encodeCommand({ name: 'PING', value: 3 }), encodeCommand({ name: 'POSTCOPY_RUN' }));
  const bytes = cat(
    stream.subarray(0, full),
    encodeCommand({
      name: 'POSTCOPY_RAM_DISCARD',
      block: 'pc.ram',
      ranges: [
        [0x200000, 0x40000],
        [0x800000, 0x200000],
      ],
    }),
    encodeCommand({ name: 'PING', value: 2 }),
    encodePackaged(nested),
    encodeCommand({ name: 'PING', value: 4 }),
    new Uint8Array([0]),
  );
  return { bytes, devices: end.tail.devices, nested };
}

function headerSize(stream: Uint8Array, at: number): number {
  return 1 + 4 + 1 + stream[at + 5]! + 8;
}

describe('postcopy commands', () => {
  it('are written byte for byte as savevm.c writes them', () => {
    expect(hex(encodeCommand({ name: 'OPEN_RETURN_PATH' }))).toBe('0800010000');
    expect(hex(encodeCommand({ name: 'PING', value: 3 }))).toBe('080002000400000003');
    expect(hex(encodeCommand({ name: 'POSTCOPY_ADVISE', hostPageSizes: 4096, targetPageSize: 4096 }))).toBe('080003001000000000000010000000000000001000');
    expect(hex(encodeCommand({ name: 'POSTCOPY_RAM_DISCARD', block: 'pc.ram', ranges: [[0x200000, 0x1000]] }))).toBe(
      '0800060019' + '0006' + Buffer.from('pc.ram').toString('hex') + '00' + '0000000000200000' + '0000000000001000',
    );
    expect(hex(encodePackaged(new Uint8Array([8, 0, 5, 0, 0])))).toBe('08000700040000000508000500' + '00');
    expect(hex(encodeCommand({ name: 'RECV_BITMAP', block: 'pc.ram' }))).toBe('08000a0007' + '06' + Buffer.from('pc.ram').toString('hex'));
  });

  it('decode from a postcopy-shaped QEMU stream: PACKAGED as its nested stream, devices split as in the precopy tail', () => {
    const { bytes, devices } = postcopyShaped();
    const evs = events(bytes);
    const cmds = evs.filter((e) => e.type === 'command');
    expect(cmds.map((c) => c.type === 'command' && c.name)).toEqual(['POSTCOPY_RAM_DISCARD', 'PING', 'PACKAGED', 'PING']);
    const discard = cmds[0]!;
    expect(discard.type === 'command' && discard.info).toEqual({
      name: 'POSTCOPY_RAM_DISCARD',
      block: 'pc.ram',
      ranges: [
        [0x200000, 0x40000],
        [0x800000, 0x200000],
      ],
    });
    const pkg = cmds[2]!.type === 'command' ? cmds[2]!.package! : undefined;
    expect(pkg!.commands.map((c) => [c.name, c.before])).toEqual([
      ['POSTCOPY_LISTEN', 0],
      ['PING', devices.length],
      ['POSTCOPY_RUN', devices.length],
    ]);
    expect(pkg!.devices.map((d) => [d.idstr, d.instanceId, d.size])).toEqual(devices.map((d) => [d.idstr, d.instanceId, d.size]));
    expect(pkg!.devices[0]!.offset).toBe(pkg!.offset + 5);
    const end = evs[evs.length - 1]!;
    expect(end.type === 'end' && [end.tail.devices.length, end.tail.vmdescBytes]).toEqual([0, 0]);
    // Decoded in 1000-byte pieces the same; transcoded, the commands and the package come out unchanged.
    const pieces: StreamEvent[] = [];
    const d = new StreamDecoder((ev) => ev.type === 'command' && pieces.push(ev));
    for (let at = 0; at < bytes.length; at += 1000) d.push(bytes.subarray(at, at + 1000));
    d.end();
    expect(pieces.map((c) => c.type === 'command' && [c.name, c.offset, hex(c.package?.bytes ?? c.payload)])).toEqual(
      cmds.map((c) => c.type === 'command' && [c.name, c.offset, hex(c.package?.bytes ?? c.payload)]),
    );
    const again = events(transcodeBytes(bytes)).filter((e) => e.type === 'command');
    expect(again.map((c) => c.type === 'command' && [c.name, hex(c.package?.bytes ?? c.payload)])).toEqual(
      cmds.map((c) => c.type === 'command' && [c.name, hex(c.package?.bytes ?? c.payload)]),
    );
  });

  it('reject what QEMU rejects, at the byte', () => {
    const { bytes, nested } = postcopyShaped();
    const full = summarizeStream(loadFixture('plain').stream).firstFullOffset;
    const head = bytes.subarray(0, full);
    const bad = (version: number) => {
      const c = encodeCommand({ name: 'POSTCOPY_RAM_DISCARD', block: 'pc.ram', ranges: [[0, 4096]] });
      c[5] = version;
      return c;
    };
    expect(failure(() => events(cat(head, bad(1)))).code).toBe('BAD_COMMAND');
    const short = encodeCommand({ name: 'POSTCOPY_RAM_DISCARD', block: 'pc.ram', ranges: [[0, 4096]] }).subarray(0, 25);
    short[4] = 20; // len no longer 3 + name + 16·k
    expect(failure(() => events(cat(head, short))).message).toMatch(/CMD_POSTCOPY_RAM_DISCARD invalid length \(20\)/);
    const cut = encodePackaged(nested).subarray(0, 100);
    const e = failure(() => events(cat(head, cut)));
    expect([e.code, e.offset]).toEqual(['TRUNCATED', full + 100]);
    const nestedTwice = cat(encodeCommand({ name: 'POSTCOPY_LISTEN' }), encodePackaged(new Uint8Array(0)));
    expect(failure(() => events(cat(head, encodePackaged(nestedTwice)))).message).toMatch(/PACKAGED inside PACKAGED/);
    const garbage = cat(encodeCommand({ name: 'POSTCOPY_LISTEN' }), new Uint8Array([0x33]));
    const g = failure(() => events(cat(head, encodePackaged(garbage))));
    expect([g.code, g.offset]).toEqual(['BAD_SECTION', full + 9 + 5]);
    const big = failure(() => decodeAll(cat(head, encodePackaged(nested)), () => {}, { limits: { maxTailBytes: nested.length - 1 } }));
    expect([big.code, big.offset]).toEqual(['LIMIT', full + 5]);
    const colo = cat(head, new Uint8Array([8, 0, 8, 0, 0]));
    expect(failure(() => events(colo)).code).toBe('UNSUPPORTED');
  });
});

describe('return path', () => {
  const msgs: ReturnPathEvent[] = [
    { type: 'PONG', offset: 0, value: 1 },
    { type: 'PONG', offset: 8, value: 2 },
    { type: 'REQ_PAGES_ID', offset: 16, block: 'pc.ram', start: 0x801000, length: 4096 },
    { type: 'REQ_PAGES', offset: 39, block: 'pc.ram', start: 0x9000, length: 8192 },
    { type: 'PONG', offset: 55, value: 4 },
    { type: 'PONG', offset: 63, value: 3 },
    { type: 'RECV_BITMAP', offset: 71, block: 'pc.ram', bitmapBytes: 16 },
    { type: 'RESUME_ACK', offset: 114, value: 1 },
    { type: 'SHUT', offset: 122, value: 0 },
  ];
  const bytes = cat(...msgs.map((m) => encodeReturnPath(m)));

  it('decodes every message, in any piece size, with its offset (PONGs in arrival order)', () => {
    expect(hex(encodeReturnPath(msgs[2]!))).toBe('00030013' + '0000000000801000' + '00001000' + '06' + Buffer.from('pc.ram').toString('hex'));
    for (const piece of [1, 3, 4096]) {
      const got: ReturnPathEvent[] = [];
      const d = new ReturnPathDecoder((ev) => got.push(ev));
      for (let at = 0; at < bytes.length; at += piece) d.push(bytes.subarray(at, at + piece));
      d.end();
      expect(got).toEqual(msgs);
    }
  });

  it('rejects what the source rejects', () => {
    const run = (b: Uint8Array) =>
      failure(() => {
        const d = new ReturnPathDecoder(() => {});
        d.push(b);
        d.end();
      });
    expect(run(new Uint8Array([0, 7, 0, 0])).message).toMatch(/Received invalid message 0x0007 length 0x0000/);
    expect(run(new Uint8Array([0, 2, 0, 5, 0, 0, 0, 0, 0])).message).toMatch(/'PONG' message \(0x0002\) with incorrect length 5 expecting 4/);
    expect(run(encodeReturnPath({ type: 'REQ_PAGES', offset: 0, block: '', start: 0, length: 4096 })).message).toMatch(/REQ_PAGES before any REQ_PAGES_ID/);
    const bitmap = encodeReturnPath({ type: 'RECV_BITMAP', offset: 0, block: 'pc.ram', bitmapBytes: 8 });
    bitmap[bitmap.length - 1] = 0;
    expect(run(bitmap).offset).toBe(bitmap.length - 8);
    expect(run(bytes.subarray(0, 10)).code).toBe('TRUNCATED');
  });
});

describe('preempt channel', () => {
  const blocks = [{ idstr: 'pc.ram', length: 1 << 20 }];
  const rec = (addr: number, flags: number, name?: string, body?: Uint8Array) => {
    const h = Buffer.alloc(8);
    h.writeBigUInt64BE(BigInt(addr + flags));
    return cat(h, ...(name ? [new Uint8Array([name.length]), Buffer.from(name)] : []), ...(body ? [body] : []));
  };
  const page = new Uint8Array(4096).fill(0x5a);
  const stream = cat(rec(0x3000, 0x08, 'pc.ram', page), rec(0x4000, 0x22, undefined, new Uint8Array([0])), rec(0, 0x10));

  it('decodes ZERO/PAGE records (CONTINUE after a named one) up to its EOS', () => {
    const got: [string, number][] = [];
    const d = new PreemptDecoder(blocks, 4096, (ev) => ev.type === 'page' && got.push([ev.kind, ev.offset]));
    for (let at = 0; at < stream.length; at += 777) d.push(stream.subarray(at, at + 777));
    d.end();
    expect(got).toEqual([
      ['normal', 0x3000],
      ['zero', 0x4000],
    ]);
  });

  it('rejects other records, bytes after EOS and a cut channel', () => {
    const run = (b: Uint8Array) =>
      failure(() => {
        const d = new PreemptDecoder(blocks, 4096, () => {});
        d.push(b);
        d.end();
      });
    expect(run(rec(0, 0x40, 'pc.ram')).code).toBe('BAD_RAM_RECORD');
    expect(run(cat(stream, new Uint8Array([1]))).code).toBe('TRAILING_DATA');
    expect([run(stream.subarray(0, 100)).code, run(stream.subarray(0, 100)).offset]).toEqual(['TRUNCATED', 100]);
    expect(run(rec(0x100000, 0x02, 'pc.ram', new Uint8Array([0]))).code).toBe('BAD_OFFSET');
  });
});

describe('postcopy discards', () => {
  const P = page((i) => i * 7 + 1);
  const Q = page((i) => i * 5 + 2);
  const R = page((i) => i * 3 + 3);
  /**
   * A postcopy migration of 4 pages as ram.c sends one: pages 0 and 2 are still dirty at the switch, so
   * POSTCOPY_RAM_DISCARD throws them away on the destination; page 0 is sent again after RUN (its content
   * unchanged since round 2), page 2 never (a recording cut short), page 1 was not dirty.
   */
  function postcopyStream(): Uint8Array {
    const parts: Uint8Array[] = [];
    const e = new StreamEncoder((c) => parts.push(c.slice()));
    e.header().configuration('pc-i440fx-7.2');
    e.raw(encodeCommand({ name: 'POSTCOPY_ADVISE', hostPageSizes: 4096, targetPageSize: 4096 }));
    e.sectionStart(RAM)
      .memSize([{ idstr: 'pc.ram', length: 4 * 4096 }])
      .ramEos()
      .footer(2);
    e.sectionPart(2).page('pc.ram', 0, P).page('pc.ram', 4096, Q).page('pc.ram', 8192, R).ramEos().footer(2);
    for (let round = 0; round < 2; round++) e.sectionPart(2).page('pc.ram', 0, P).ramEos().footer(2);
    e.raw(
      encodeCommand({
        name: 'POSTCOPY_RAM_DISCARD',
        block: 'pc.ram',
        ranges: [
          [0, 4096],
          [8192, 4096],
        ],
      }),
    );
    e.raw(encodePackaged(cat(encodeCommand({ name: 'POSTCOPY_LISTEN' }), encodeCommand({ name: 'POSTCOPY_RUN' }))));
    e.sectionPart(2).page('pc.ram', 0, P).ramEos().footer(2);
    e.sectionEnd(2)
      .ramEos()
      .footer(2)
      .raw(new Uint8Array([0]));
    e.flush();
    return cat(...parts);
  }
  function rebuild(bytes: Uint8Array): Uint8Array {
    const image = new RamImage();
    const ram = new VerifyingRamStore(image);
    decodeAll(bytes, (ev) => ram.handle(ev));
    return image.blocks.get('pc.ram')!;
  }

  it('zero their ranges when RAM is rebuilt (ram_discard_range), until the page is sent again', () => {
    expect(Buffer.from(rebuild(postcopyStream())).equals(Buffer.concat([P, Q, new Uint8Array(8192)]))).toBe(true);
  });

  it('make the transcoder send a discarded page whole again, even unchanged against its XBZRLE cache', () => {
    const input = postcopyStream();
    for (const options of [{ xbzrle: { cacheBytes: 1 << 20 } }, { xbzrle: { cacheBytes: 1 << 20 }, compress: { codec: 'lz4' as const } }, {}]) {
      const out = transcodeBytes(input, options);
      expect(Buffer.from(rebuild(out)).equals(Buffer.from(rebuild(input)))).toBe(true);
      // After LISTEN, only whole pages (ram_load_postcopy takes no XBZRLE).
      const kinds: string[] = [];
      let post = false;
      decodeAll(out, (ev) => {
        if (ev.type === 'command' && ev.name === 'PACKAGED') post = true;
        if (ev.type === 'page' && post) kinds.push(ev.kind);
      });
      expect(kinds).toEqual([options.compress ? 'lz4' : 'normal']);
    }
  });

  it('reject what ram_discard_range rejects: an unknown block, an unaligned or overrunning range', () => {
    const withDiscard = (block: string, ranges: [number, number][]) => {
      const s = postcopyStream();
      const at = Buffer.from(s).indexOf(
        Buffer.from(
          encodeCommand({
            name: 'POSTCOPY_RAM_DISCARD',
            block: 'pc.ram',
            ranges: [
              [0, 4096],
              [8192, 4096],
            ],
          }),
        ),
      );
      return cat(s.subarray(0, at), encodeCommand({ name: 'POSTCOPY_RAM_DISCARD', block, ranges }));
    };
    const run = (bytes: Uint8Array) => failure(() => rebuild(bytes));
    expect(run(withDiscard('pc.rom', [[0, 4096]])).code).toBe('UNKNOWN_RAMBLOCK');
    expect(run(withDiscard('pc.ram', [[100, 4096]])).message).toMatch(/Unaligned start address/);
    expect(run(withDiscard('pc.ram', [[0, 100]])).message).toMatch(/Unaligned length/);
    const over = run(withDiscard('pc.ram', [[8192, 3 * 4096]]));
    expect([over.code, over.message]).toEqual(['BAD_COMMAND', expect.stringMatching(/Overrun block 'pc.ram'/)]);
  });
});

describe('WrittenPages', () => {
  it('take() returns and forgets exactly the pages added in the range, like a set', () => {
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    const pages = 5000;
    const w = new WrittenPages();
    w.setBlock('b', pages);
    const model = new Set<number>();
    for (let round = 0; round < 300; round++) {
      for (let k = rand(40); k > 0; k--) {
        const p = rand(pages);
        w.add('b', p);
        model.add(p);
      }
      const first = rand(pages);
      const end = first + rand(pages - first + 1);
      const want = [...model].filter((p) => p >= first && p < end).sort((a, b) => a - b);
      for (const p of want) model.delete(p);
      expect(w.take('b', first, end).sort((a, b) => a - b)).toEqual(want);
    }
    expect(w.take('b', 0, pages).sort((a, b) => a - b)).toEqual([...model].sort((a, b) => a - b));
    expect(w.take('b', 0, pages)).toEqual([]);
  });
});
