/**
 * Hostile inputs for the page decoders on their own (XBZRLE, zlib, LZ4),
 * hostile extension manifests, and the names and page contents the stream
 * generator (generate.ts) builds records from.
 */
import { deflateRawSync, deflateSync } from 'node:zlib';
import { ByteWriter } from '../codec/byte-writer.js';
import { Rng } from './rng.js';
import { blockChunks, chunkCompression, lz4Pages } from '../stream/extensions/registry.js';

export const TEXT = new TextEncoder();

const NAMES = ['pc.ram', 'pc.bios', 'vga', '0000:00:02.0/vga.vram', '/rom@etc/acpi/tables', 'ram', 'block', 'x'];

export function name(r: Rng): string {
  const roll = r.int(20);
  if (roll < 14) return r.pick(NAMES);
  if (roll < 16) return '';
  if (roll < 18) return 'n'.repeat(r.pick([1, 64, 127, 128, 200, 255]));
  return String.fromCharCode(...r.bytes(1 + r.int(12)).map((c) => 0x20 + (c % 95)));
}

/** A str8 whose bytes may be invalid UTF-8 or whose length byte lies. */
export function rawStr8(r: Rng, w: ByteWriter, s: string): void {
  if (r.chance(0.03)) {
    const junk = r.bytes(r.int(8));
    w.u8(r.chance(0.5) ? junk.length : r.int(256)).bytes(junk);
    return;
  }
  const b = TEXT.encode(s);
  w.u8(b.length & 0xff).bytes(b.subarray(0, Math.min(b.length, 255)));
}

export function pageData(r: Rng, size: number): Uint8Array {
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
    if (lit >= 15) lz4Length(w, lit - 15);
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
  const lz4 = { name: lz4Pages.name, version: 1, params: { flag: 0x400, pageSize, acceleration: 1, compressor: 'lz4_flex' } };
  const chunks = { name: blockChunks.name, version: 1, params: {} };
  const packed = { name: chunkCompression.name, version: 1, params: { flag: r.pick([0x20, 0x20, 0x20, 0x10]), codec: 'lz4', level: 1 } };
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
  if (n >= 15) lz4Length(w, n - 15);
  return w.bytes(page).take();
}

/** An LZ4 length past the token's 15: bytes of 255, then the rest. */
function lz4Length(w: ByteWriter, rest: number): void {
  for (; rest >= 255; rest -= 255) w.u8(255);
  w.u8(rest);
}
