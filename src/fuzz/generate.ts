/**
 * Structure-aware generation: streams with valid framing and hostile values
 * (huge MEM_SIZE totals, many RAMBlocks, offsets past block ends, bad
 * CONTINUE, XBZRLE with hostile run lengths, compressed lengths at and above
 * compressBound, block records with huge sectors, commands with bad lengths,
 * vmdesc with bad JSON or lying lengths, deep and odd device tails), and
 * hostile inputs for the page decoders on their own.
 */
import { deflateRawSync, deflateSync } from 'node:zlib';
import { ByteWriter } from '../codec/byte-writer.js';
import { compressBound } from '../stream/constants.js';
import type { RamBlockInfo } from '../stream/events.js';
import { RAM_SECTION, BLOCK_SECTION, SeedWriter } from './corpus.js';
import { Rng } from './rng.js';
import { Lz4Compressor } from '../codec/lz4-block.js';

const TEXT = new TextEncoder();

const NAMES = ['pc.ram', 'pc.bios', 'vga', '0000:00:02.0/vga.vram', '/rom@etc/acpi/tables', 'ram', 'block', 'x'];

function name(r: Rng): string {
  const roll = r.int(20);
  if (roll < 14) return r.pick(NAMES);
  if (roll < 16) return '';
  if (roll < 18) return 'n'.repeat(r.pick([1, 64, 127, 128, 200, 255]));
  return String.fromCharCode(...r.bytes(1 + r.int(12)).map((c) => 0x20 + (c % 95)));
}

/** A str8 whose bytes may be invalid UTF-8 or whose length byte lies. */
function rawStr8(r: Rng, w: ByteWriter, s: string): void {
  if (r.chance(0.03)) {
    const junk = r.bytes(r.int(8));
    w.u8(r.chance(0.5) ? junk.length : r.int(256)).bytes(junk);
    return;
  }
  const b = TEXT.encode(s);
  w.u8(b.length & 0xff).bytes(b.subarray(0, Math.min(b.length, 255)));
}

function pageData(r: Rng, size: number): Uint8Array {
  const p = new Uint8Array(size);
  const kind = r.int(4);
  if (kind === 0) return p;
  if (kind === 1) return p.fill(r.int(256));
  const step = 1 + r.int(64);
  const v = r.u32();
  for (let i = 0; i < size; i += step) p[i] = Math.imul(i, v) >>> 24;
  if (kind === 3) p.set(r.bytes(Math.min(size, 64)), r.int(Math.max(1, size - 64)));
  return p;
}

/** Valid zlib pages made once per page size (deflate costs tens of µs a call): the generator mutates copies. */
const zlibPool = new Map<number, Uint8Array[]>();

function pooledZlib(r: Rng, pageSize: number): Uint8Array[] {
  let pool = zlibPool.get(pageSize);
  if (!pool) {
    pool = [];
    const pr = new Rng(pageSize, 99);
    for (let i = 0; i < 24; i++) {
      const size = i < 16 ? pageSize : i < 20 ? pageSize + [1, 4096, 1 << 16, 1 << 20][i - 16]! : pr.int(pageSize);
      const data = i < 20 && i >= 16 ? new Uint8Array(size) : pageData(pr, size);
      pool.push(new Uint8Array(i % 5 === 4 ? deflateRawSync(data, { level: i % 10 }) : deflateSync(data, { level: i % 10 })));
    }
    zlibPool.set(pageSize, pool);
  }
  return pool;
}

/** An XBZRLE delta: mostly well-formed, with hostile run lengths, ULEB forms and page-end edges. */
export function hostileXbzrle(r: Rng, pageSize: number): Uint8Array {
  const w = new ByteWriter(256);
  const uleb = (v: number): void => {
    const form = r.int(30);
    if (form === 0)
      w.u8(0x80 | (v & 0x7f))
        .u8(0x80 | ((v >> 7) & 0x7f))
        .u8(v >> 14); // 3-byte form QEMU rejects
    else if (form === 1)
      w.u8(0x80 | (v & 0x7f)).u8(0x00); // a 2-byte form of a small value
    else if (v < 0x80) w.u8(v);
    else w.u8(0x80 | (v & 0x7f)).u8((v >> 7) & 0x7f);
  };
  let d = 0;
  let first = true;
  const runs = r.chance(0.05) ? r.int(100) : r.int(6);
  for (let k = 0; k < runs; k++) {
    const left = pageSize - d;
    const zpick = r.int(12);
    const z = Math.max(
      0,
      Math.min(
        0x3fff,
        zpick === 0 ? 0 : zpick === 1 ? left : zpick === 2 ? left + 1 + r.int(3) : zpick === 3 ? 0x3fff : r.int(Math.max(1, Math.min(left, 600))),
      ),
    );
    uleb(first && r.chance(0.5) ? 0 : z);
    first = false;
    d += z;
    const rest = Math.max(0, pageSize - d);
    const npick = r.int(12);
    const n = Math.min(
      0x3fff,
      npick === 0 ? 0 : npick === 1 ? rest : npick === 2 ? rest + 1 : npick === 3 ? 0x3fff : 1 + r.int(Math.max(1, Math.min(rest, 300))),
    );
    uleb(n);
    const data = Math.min(n, r.chance(0.1) ? r.int(n + 1) : n);
    w.bytes(r.bytes(data));
    d += n;
    if (r.chance(0.05)) break;
  }
  if (r.chance(0.1)) w.bytes(r.bytes(1 + r.int(3)));
  return w.take();
}

/** A zlib page: valid, oversized when inflated, raw deflate, truncated, with trailing bytes, or junk. */
export function hostileZlib(r: Rng, pageSize: number): Uint8Array {
  const z = r.pick(pooledZlib(r, pageSize));
  switch (r.int(8)) {
    case 0:
      return z.subarray(0, r.int(z.length));
    case 1: {
      const out = new Uint8Array(z.length + 1 + r.int(16));
      out.set(z);
      out.set(r.bytes(out.length - z.length), z.length);
      return out;
    }
    case 2:
    case 3: {
      const out = z.slice();
      for (let i = 0; i < 1 + r.int(3); i++) out[r.int(out.length)]! ^= 1 << r.int(8);
      return out;
    }
    case 4:
      return r.bytes(r.int(40));
    default:
      return z;
  }
}

/** An LZ4 block: junk, or a literal run with hostile token/length bytes and match offsets. */
export function hostileLz4(r: Rng, pageSize: number): Uint8Array {
  const w = new ByteWriter(256);
  const seqs = 1 + r.int(6);
  for (let i = 0; i < seqs; i++) {
    const lit = r.chance(0.3) ? r.int(20) : r.pick([0, 14, 15, 16, 270, pageSize, pageSize + 1]);
    const ml = r.int(16);
    w.u8((Math.min(lit, 15) << 4) | ml);
    if (lit >= 15) {
      let rest = lit - 15;
      while (rest >= 255) {
        w.u8(255);
        rest -= 255;
      }
      w.u8(rest);
    }
    w.bytes(r.bytes(Math.min(lit, r.chance(0.9) ? lit : r.int(lit + 1))));
    if (i === seqs - 1 && r.chance(0.7)) break;
    const off = r.pick([0, 1, 2, 4, 8, 0xffff, r.int(0x10000)]);
    w.u8(off & 0xff).u8(off >> 8);
    if (ml === 15) {
      const extra = r.pick([0, 1, 254, 255, 255, 100]);
      w.u8(extra);
      if (extra === 255) w.u8(r.int(256));
    }
  }
  if (r.chance(0.2)) return r.bytes(r.int(64));
  return w.take();
}

/** A minimal msgpack writer for manifests (maps, arrays, strings, ints, bools, nil, bin). */
export function msgpack(v: unknown, w = new ByteWriter(128)): ByteWriter {
  if (v === null || v === undefined) w.u8(0xc0);
  else if (v === true) w.u8(0xc3);
  else if (v === false) w.u8(0xc2);
  else if (typeof v === 'number') {
    if (Number.isInteger(v) && v >= 0 && v < 128) w.u8(v);
    else if (Number.isInteger(v) && v >= 0 && v <= 0xffffffff) w.u8(0xce).be32(v);
    else if (Number.isInteger(v) && v < 0 && v >= -32) w.u8(v & 0xff);
    else {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setFloat64(0, v);
      w.u8(0xcb).bytes(b);
    }
  } else if (typeof v === 'string') {
    const b = TEXT.encode(v);
    if (b.length < 32) w.u8(0xa0 | b.length);
    else w.u8(0xda).be16(b.length);
    w.bytes(b);
  } else if (v instanceof Uint8Array) w.u8(0xc4).u8(v.length).bytes(v);
  else if (Array.isArray(v)) {
    if (v.length < 16) w.u8(0x90 | v.length);
    else w.u8(0xdc).be16(v.length);
    for (const x of v) msgpack(x, w);
  } else {
    const entries = Object.entries(v as Record<string, unknown>);
    if (entries.length < 16) w.u8(0x80 | entries.length);
    else w.u8(0xde).be16(entries.length);
    for (const [k, x] of entries) {
      msgpack(k, w);
      msgpack(x, w);
    }
  }
  return w;
}

/** A manifest payload: valid lz4-pages / block-chunks, or hostile msgpack. */
export function hostileManifest(r: Rng, pageSize: number): Uint8Array {
  const lz4 = { name: 'lz4-pages', version: 1, params: { flag: 0x400, pageSize, acceleration: 1, compressor: 'lz4_flex' } };
  const chunks = { name: 'block-chunks', version: 1, params: {} };
  const packed = { name: 'chunk-compression', version: 1, params: { flag: r.pick([0x20, 0x20, 0x20, 0x10]), codec: 'lz4', level: 1 } };
  const m = (extensions: unknown, more: Record<string, unknown> = {}): Uint8Array => msgpack({ extensions, format: 'migstream', version: 1, ...more }).take();
  switch (r.int(17)) {
    case 0:
      return m([lz4, chunks]);
    case 16:
      return m(r.chance(0.8) ? [chunks, packed] : [packed]);
    case 1:
      return m([{ ...lz4, params: { ...lz4.params, flag: r.pick([0x200, 0x800, 0x400 + 1]) } }]);
    case 2:
      return m([{ ...lz4, params: { ...lz4.params, pageSize: r.pick([1024, 4097, 0, 2 ** 32]) } }]);
    case 3:
      return m([{ name: 'no-such-extension', version: 1, params: {}, required: r.chance(0.5) }, lz4]);
    case 4:
      return m([lz4, lz4]);
    case 5:
      return m([{ ...lz4, version: r.pick([2, 0, -1, 1.5]) }]);
    case 6:
      return m('lz4', { version: r.pick([1, 2]) });
    case 7:
      return msgpack({ format: 'other', version: 1, extensions: [] }).take();
    case 8: {
      const depth = r.pick([100, 1000, 20000, 65000]);
      const w = new ByteWriter(depth + 8);
      for (let i = 0; i < depth; i++)
        w.u8(r.chance(0.5) ? 0x91 : 0x81)
          .u8(0xa0)
          .u8(0);
      return w.take().subarray(0, Math.min(0xffff, depth * 3));
    }
    case 9:
      return Uint8Array.of(0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 0x61); // map32 claiming 2^32-1 entries
    case 10:
      return Uint8Array.of(0x81, 0xdb, 0xff, 0xff, 0xff, 0xff, 0x61); // str32 claiming 4 GiB
    case 11:
      return Uint8Array.of(0x81, 0xd4, 0x01, 0x02, 0xa1, 0x61); // ext key
    case 12:
      return msgpack({ __proto__: 1, constructor: 2, format: 'migstream', version: 1, extensions: [lz4] }).take();
    case 13: {
      const b = m([lz4]);
      return b.subarray(0, r.int(b.length));
    }
    case 14:
      return r.bytes(r.int(64));
    default:
      return m([lz4]);
  }
}

/** A valid LZ4 block of literals only (the page as is). */
export function lz4Literals(page: Uint8Array): Uint8Array {
  const w = new ByteWriter(page.length + 32);
  const n = page.length;
  w.u8(Math.min(n, 15) << 4);
  if (n >= 15) {
    let rest = n - 15;
    while (rest >= 255) {
      w.u8(255);
      rest -= 255;
    }
    w.u8(rest);
  }
  return w.bytes(page).take();
}

interface GenState {
  pageSize: number;
  blocks: RamBlockInfo[];
  shared: boolean;
  ramStarted: boolean;
  blockStarted: boolean;
  /** A manifest declared lz4-pages (as far as the generator knows). */
  lz4: boolean;
}

function offsetIn(r: Rng, st: GenState, b: RamBlockInfo | undefined): number {
  const ps = st.pageSize;
  const len = b?.length ?? 4 * ps;
  const pages = Math.max(1, Math.floor(len / ps));
  switch (r.int(12)) {
    case 0:
      return Math.floor(len / ps) * ps; // one past the end
    case 1:
      return Math.max(0, len - ps);
    case 2:
      return r.pick([2 ** 32, 2 ** 40, 2 ** 52, 2 ** 53 - ps, 2 ** 31]);
    case 3:
      return Math.ceil(len / ps) * ps; // a block length that is not a page multiple
    default:
      return r.int(Math.min(pages, 64)) * ps;
  }
}

function ramRecords(r: Rng, w: SeedWriter, st: GenState, first: boolean): void {
  const ps = st.pageSize;
  if (first || r.chance(0.05)) {
    const n = r.chance(0.03) ? r.pick([1024, 1025, 2000]) : r.int(5);
    const blocks: RamBlockInfo[] = [];
    for (let i = 0; i < n; i++) {
      const len =
        r.int(10) === 0 ? r.pick([0, 1, ps - 1, ps + 1, 2 ** 40, 2 ** 40 + ps, 2 ** 53 - 1, 2 ** 33, 64 << 20]) : (1 + r.skewed(r.chance(0.05) ? 20 : 5)) * ps;
      blocks.push({ idstr: n > 8 ? `b${i}` : name(r), length: len, mrAddr: r.chance(0.5) ? 0 : r.int(2 ** 32) });
    }
    const total = blocks.reduce((a, b) => a + b.length, 0);
    const declared = r.int(10) === 0 ? r.pick([0, total + ps, Math.max(0, total - ps), 2 ** 41, 2 ** 40, 2 ** 53 - ps]) : total;
    w.w.be64(Math.min(declared - (declared % ps), 2 ** 53 - ps) + 0x04);
    for (const b of blocks) {
      rawStr8(r, w.w, b.idstr);
      w.w.be64(Math.min(b.length, 2 ** 53 - 1));
      if (st.shared) w.w.be64(b.mrAddr ?? 0);
    }
    st.blocks = blocks;
  }
  const count = r.chance(0.05) ? r.int(40) : r.int(6);
  let last: RamBlockInfo | undefined;
  for (let i = 0; i < count; i++) {
    const b = st.blocks.length && r.chance(0.9) ? r.pick(st.blocks) : { idstr: name(r), length: 4 * ps };
    const cont = last !== undefined && last === b ? r.chance(0.8) : r.chance(0.03);
    const offset = offsetIn(r, st, b);
    const ref = (flag: number): void => {
      w.w.be64(offset + flag + (cont ? 0x20 : 0));
      if (!cont) rawStr8(r, w.w, b.idstr);
      last = b;
    };
    switch (r.int(15)) {
      case 0:
      case 1:
        ref(0x02);
        w.w.u8(r.chance(0.8) ? 0 : r.int(256));
        break;
      case 2:
      case 3:
        ref(0x08);
        w.w.bytes(pageData(r, ps));
        break;
      case 4:
      case 5:
      case 6: {
        ref(0x40);
        const delta = hostileXbzrle(r, ps);
        w.w.u8(r.chance(0.95) ? 0x01 : r.int(256));
        const lie = r.int(20);
        w.w.be16(lie === 0 ? r.pick([0, ps, ps + 1, 0xffff]) : lie === 1 ? delta.length + 1 : delta.length & 0xffff);
        w.w.bytes(delta);
        break;
      }
      case 7:
      case 8:
      case 9: {
        ref(0x100);
        const z = hostileZlib(r, ps);
        const lie = r.int(16);
        const cb = compressBound(ps);
        w.w.be32(lie === 0 ? r.pick([0, cb, cb + 1, 0xffffffff, 2 ** 31]) : lie === 1 ? z.length + 1 : z.length);
        w.w.bytes(z);
        if (lie === 0 && r.chance(0.5)) w.w.bytes(r.bytes(r.int(cb + 2)));
        break;
      }
      case 13:
        if (st.lz4 || r.chance(0.1)) {
          ref(0x400);
          const blk = r.chance(0.5) ? lz4Literals(pageData(r, ps)) : hostileLz4(r, ps);
          const lie = r.int(16);
          w.w.be32(lie === 0 ? r.pick([0, ps + 16 + Math.ceil(ps / 255), 0xffffffff]) : lie === 1 ? blk.length + 1 : blk.length);
          w.w.bytes(blk);
          break;
        }
        w.w.be64(offset + 0x08 + 0x20);
        if (!cont && r.chance(0.5)) break;
        w.w.bytes(pageData(r, ps));
        break;
      case 10:
        w.w.be64(r.chance(0.5) ? 0x200 : offset + r.pick([0x80, 0x1000, 0x800, 0x400, 0x0c, 0x42, 0x300, 0x01, 0x30]));
        break;
      case 11:
        if (r.chance(0.2)) {
          w.w.be64(0x10);
          return; // an EOS in the middle: the rest follows as top-level bytes
        }
        break;
      default:
        w.w.be64(offset + 0x08 + 0x20);
        if (!cont && r.chance(0.5)) break; // CONTINUE with nothing before
        w.w.bytes(pageData(r, ps));
    }
  }
  if (r.chance(0.95)) w.eos();
}

const LZ4 = new Lz4Compressor(1);

function blockRecords(r: Rng, w: SeedWriter): void {
  const count = r.int(6);
  for (let i = 0; i < count; i++) {
    const sector = r.chance(0.7) ? r.int(8) * 2048 : r.pick([2 ** 44 - 1, 2 ** 43, 2 ** 32, 2 ** 23, 2 ** 23 - 1]);
    const roll = r.int(10);
    if (roll < 5) {
      w.w.be64(sector * 512 + 0x09);
      rawStr8(r, w.w, r.pick(['ide0-hd1', 'ide0-hd0', '', 'virtio0', 'd'.repeat(255)]));
    } else if (roll === 5) {
      w.w.be64(sector * 512 + 0x01);
      rawStr8(r, w.w, 'ide0-hd1');
      w.w.bytes(new Uint8Array(r.chance(0.02) ? 1 << 20 : r.int(4096))); // mostly cut short
    } else if (roll === 6) {
      w.w.be64(r.pick([0, 50, 100, 101, 2 ** 30]) * 512 + 0x04);
    } else if (roll === 7) {
      // A variable-size chunk (block-chunks extension): be32 length, then the data unless zero.
      const zero = r.chance(0.3);
      w.w.be64(sector * 512 + 0x11 + (zero ? 0x08 : 0));
      rawStr8(r, w.w, 'ide0-hd1');
      const len = r.pick([512, 4096, 0, 511, 1 << 20, (1 << 20) + 512, 0xffffffff, 512 * (1 + r.int(16))]);
      w.w.be32(len);
      if (!zero) w.w.bytes(new Uint8Array(Math.min(len, r.chance(0.9) ? 8192 : 100)));
    } else if (roll === 8) {
      // A compressed chunk (chunk-compression extension): length, codec byte, be32 clen, payload.
      w.w.be64(sector * 512 + r.pick([0x31, 0x31, 0x39, 0x21, 0x35]));
      rawStr8(r, w.w, 'ide0-hd1');
      const len = r.pick([4096, 8192, 65536, 0, 511, 1 << 20, 0xffffffff]);
      w.w.be32(len).u8(r.pick([1, 2, 2, 0, 3, 255]));
      const payload = r.chance(0.5) ? LZ4.compress(new Uint8Array(Math.min(len, 8192)).fill(r.int(256))) : r.bytes(r.int(200));
      w.w.be32(r.chance(0.8) ? payload.length : r.pick([0, len, len - 1, 0xffffffff]));
      w.w.bytes(payload);
    } else {
      w.w.be64(sector * 512 + r.pick([0x10, 0x20, 0x40, 0x100, 0x03, 0x05, 0x0c, 0x1f0, 0x0a]));
    }
  }
  if (r.chance(0.95)) w.blockEos();
}

function vmdescJson(r: Rng, devices: { name: string; instance: number }[]): Uint8Array {
  const list = devices.map((d) => ({ name: d.name, instance_id: d.instance, vmsd_name: d.name, version: 1, fields: [] }));
  switch (r.int(14)) {
    case 0:
      return TEXT.encode('{"devices": [' + '['.repeat(r.pick([100, 5000, 100000])));
    case 1:
      return TEXT.encode('{"devices":' + '['.repeat(10000) + ']'.repeat(10000) + '}');
    case 2:
      return Uint8Array.of(0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d); // invalid UTF-8
    case 3:
      return TEXT.encode(JSON.stringify({ devices: 'none' }));
    case 4:
      return TEXT.encode(JSON.stringify({ devices: [null, 1, 'x', { name: 5 }] }));
    case 5:
      return TEXT.encode(JSON.stringify({ devices: list.slice(1) }));
    case 6:
      return TEXT.encode(JSON.stringify({ devices: [...list].reverse() }));
    case 7:
      return TEXT.encode('{"devices": []}' + ' '.repeat(r.int(10)) + '}');
    case 8:
      return TEXT.encode(`{"__proto__": {"devices": 1}, "devices": ${JSON.stringify(list)}}`);
    default:
      return TEXT.encode(JSON.stringify({ page_size: 4096, devices: list }));
  }
}

function tail(r: Rng, w: SeedWriter): void {
  const n = r.chance(0.05) ? r.int(300) : r.int(5);
  const devices: { name: string; instance: number }[] = [];
  for (let i = 0; i < n; i++) {
    const id = 3 + i + (r.chance(0.05) ? r.int(1000) : 0);
    const nm = r.chance(0.9) ? r.pick(['timer', 'cpu', 'apic', 'globalstate', 'e1000', '0000:00:01.1/ide']) : name(r);
    const inst = r.chance(0.9) ? 0 : r.pick([1, 0xffff, 0x10000, 0xffffffff]);
    devices.push({ name: nm, instance: inst });
    w.w.u8(0x04).be32(id);
    rawStr8(r, w.w, nm);
    w.w.be32(inst).be32(r.chance(0.9) ? 1 + r.int(4) : r.pick([0, 0xffff, 0x10000, 0xffffffff]));
    const data = new ByteWriter(64);
    const parts = r.int(5);
    for (let k = 0; k < parts; k++) {
      switch (r.int(5)) {
        case 0: // a footer-like sequence for this section inside its data
          data.u8(0x7e).be32(id);
          if (r.chance(0.5)) data.u8(r.pick([0x04, 0x00]));
          break;
        case 1:
          data
            .u8(0x04)
            .be32(id + 1)
            .u8(3)
            .bytes(TEXT.encode('cpu'))
            .be32(0)
            .be32(1);
          break;
        case 2:
          data.bytes(new Uint8Array(r.skewed(r.chance(0.02) ? 16 : 8)));
          break;
        default:
          data.bytes(r.bytes(r.int(32)));
      }
    }
    w.w.bytes(data.take());
    if (r.chance(0.95)) w.w.u8(0x7e).be32(r.chance(0.95) ? id : id + 1);
  }
  const roll = r.int(20);
  if (roll === 0) return; // no EOF
  w.w.u8(0x00);
  if (roll < 4) return; // no vmdesc (suppress-vmdesc)
  const json = vmdescJson(r, devices);
  const lie = r.int(12);
  w.w.u8(r.chance(0.97) ? 0x06 : r.int(256));
  w.w.be32(lie === 0 ? json.length + 1 + r.int(100) : lie === 1 ? Math.max(0, json.length - 1 - r.int(5)) : lie === 2 ? 0xffffffff : json.length);
  w.w.bytes(json);
  if (r.chance(0.05)) w.w.bytes(r.bytes(1 + r.int(8)));
}

/** A whole stream with valid framing and hostile values. */
export function hostileStream(r: Rng): Uint8Array {
  const bitsRoll = r.int(20);
  const pageBits = bitsRoll === 0 ? r.pick([10, 10, 13, 16]) : bitsRoll === 1 ? r.pick([9, 17, 0, 0xffffffff]) : undefined;
  const ps = pageBits !== undefined && pageBits >= 10 && pageBits <= 16 ? 1 << pageBits : 4096;
  const w = new SeedWriter(ps);
  if (r.chance(0.02)) w.w.be32(r.pick([0x5145564d, 0x5145564e, 0])).be32(r.pick([2, 3, 4]));
  else w.header();
  const caps: string[] = [];
  if (r.chance(0.9)) {
    const roll = r.int(30);
    const machine = roll === 0 ? 'm'.repeat(r.pick([256, 257, 5000])) : 'pc-i440fx-7.2';
    w.w
      .u8(0x07)
      .be32(roll === 1 ? 0xffffffff : machine.length)
      .bytes(TEXT.encode(machine));
    if (pageBits !== undefined) w.w.u8(0x05).str8('configuration/target-page-bits').be32(1).be32(pageBits);
    if (r.chance(0.3)) {
      const all = ['x-ignore-shared', 'xbzrle', 'postcopy-ram', 'compress', 'multifd', 'x'.repeat(255), ''];
      const n = r.chance(0.02) ? r.pick([64, 65, 1000]) : r.int(4);
      for (let i = 0; i < n; i++) caps.push(r.pick(all));
      w.w
        .u8(0x05)
        .str8('configuration/capabilities')
        .be32(r.chance(0.95) ? 1 : 2)
        .be32(r.chance(0.95) ? caps.length : caps.length + 3);
      for (const c of caps) rawStr8(r, w.w, c);
    }
    if (r.chance(0.1)) w.w.u8(0x05).str8('configuration/uuid').be32(1).bytes(r.bytes(16));
    if (r.chance(0.03))
      w.w
        .u8(0x05)
        .str8(r.pick(['configuration/other', '']))
        .be32(1);
  }
  let lz4 = false;
  if (r.chance(0.15)) {
    const payload = hostileManifest(r, ps);
    lz4 = payload.length > 0;
    w.w.u8(0x08).be16(0x6d73).be16(Math.min(payload.length, 0xffff)).bytes(payload.subarray(0, 0xffff));
    if (r.chance(0.05))
      w.w
        .u8(0x08)
        .be16(0x6d73)
        .be16(payload.length & 0xffff)
        .bytes(payload.subarray(0, 0xffff));
  }
  const st: GenState = { pageSize: ps, blocks: [], shared: caps.includes('x-ignore-shared'), ramStarted: false, blockStarted: false, lz4 };
  const footers = r.chance(0.95);
  const units = 1 + r.int(r.chance(0.1) ? 30 : 6);
  for (let u = 0; u < units; u++) {
    const roll = r.int(20);
    if (roll < 12) {
      const id = r.chance(0.97) ? 2 : r.int(5);
      if (!st.ramStarted || r.chance(0.05)) {
        w.start(r.chance(0.97) ? RAM_SECTION : { ...RAM_SECTION, versionId: r.pick([3, 5]) });
        st.ramStarted = true;
        ramRecords(r, w, st, true);
      } else {
        if (r.chance(0.8)) w.part(id);
        else w.end(id);
        ramRecords(r, w, st, false);
      }
      if (footers) w.footer(r.chance(0.97) ? 2 : r.int(5));
    } else if (roll < 15) {
      if (!st.blockStarted) w.start(BLOCK_SECTION);
      else w.part(1);
      st.blockStarted = true;
      blockRecords(r, w);
      if (footers) w.footer(1);
    } else if (roll < 18) {
      const cmd = r.chance(0.8) ? r.int(11) : r.pick([0, 11, 0xffff, 7]);
      const len = r.pick([0, 4, 16, 1, 3, r.int(64), 0xffff]);
      w.w
        .u8(0x08)
        .be16(cmd)
        .be16(len)
        .bytes(r.bytes(Math.min(len, r.chance(0.9) ? len : r.int(len + 1))));
    } else if (roll === 18) {
      w.w.u8(r.pick([0x01, 0x02, 0x03, 0x05, 0x06, 0x07, 0x09, 0x7e, 0xff]));
      if (r.chance(0.5)) w.w.be32(r.int(4));
    } else {
      w.w
        .u8(r.pick([0x01, 0x04]))
        .be32(r.int(10))
        .str8(r.pick(['timer', 'ram', 'block', 'dirty-bitmap', '']))
        .be32(0)
        .be32(r.int(5));
    }
  }
  tail(r, w);
  return w.take();
}
