/**
 * Byte- and structure-level mutations of seed streams: bit flips, byte
 * insertions and deletions, truncation, splicing two streams, record
 * duplication and removal, and length / id / header fields set to extremes.
 */
import { compressBound } from '../stream/constants.js';
import type { Rng } from './rng.js';
import type { Field, StreamMap } from './walk.js';

export interface Mutable {
  bytes: Uint8Array;
  map: StreamMap;
}

const INTERESTING8 = [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x10, 0x20, 0x40, 0x7e, 0x7f, 0x80, 0x81, 0xfe, 0xff];

/** Values worth trying in a field of `bits` bits that held `old`. */
function extremes(bits: number, old: number, kind: Field['kind']): number[] {
  const max = 2 ** bits - 1;
  const v = [0, 1, 2, max, max - 1, 2 ** (bits - 1), 2 ** (bits - 1) - 1, old + 1, old - 1, old * 2, Math.floor(old / 2), old + 4096, old + 0x1000000];
  if (bits >= 16) v.push(4095, 4096, 4097, 8192, 65535, 65536, compressBound(4096), compressBound(4096) + 1, 1024, 1025);
  if (bits >= 32) v.push(0x7fffffff, 0x80000000, 2 ** 30, 64 << 20, (64 << 20) + 1);
  if (bits === 64) {
    v.push(2 ** 53 - 1, 2 ** 53, 2 ** 40, 2 ** 40 + 4096, 2 ** 33, 2 ** 32, 2 ** 32 - 4096, 2 ** 62);
    if (kind === 'ramhdr') {
      const flags = [0x02, 0x08, 0x40, 0x100, 0x04, 0x10, 0x20, 0x22, 0x28, 0x60, 0x120, 0x200, 0x80, 0x1000, 0xfff, 0x0c, 0x42, 0x104, 0x300];
      for (let i = 0; i < 6; i++) v.push(old - (old % 4096) + flags[(i * 7 + old) % flags.length]!);
      v.push(old + 4096, old - 4096, old + 2 ** 33, (old % 4096) + 2 ** 40, (old % 4096) + 2 ** 52, old ^ 0x20);
    }
    if (kind === 'blkhdr') v.push(0x01, 0x02, 0x04, 0x08, 0x09, 0x03, 0x1ff, 0x200, (old % 512) + 2 ** 52, (old % 512) + 2 ** 41);
  }
  return v.map((x) => Math.max(0, Math.min(x, bits === 64 ? 2 ** 64 - 1 : max)));
}

function writeField(b: Uint8Array, f: Field, value: number): void {
  if (value >= 2 ** (8 * f.size)) {
    b.fill(0xff, f.at, f.at + f.size);
    return;
  }
  let v = value;
  for (let i = f.size - 1; i >= 0; i--) {
    b[f.at + i] = v % 256;
    v = Math.floor(v / 256);
  }
}

function readField(b: Uint8Array, f: Field): number {
  let v = 0;
  for (let i = 0; i < f.size; i++) v = v * 256 + b[f.at + i]!;
  return v;
}

function splice(a: Uint8Array, at: number, del: number, ins: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length - del + ins.length);
  out.set(a.subarray(0, at), 0);
  out.set(ins, at);
  out.set(a.subarray(at + del), at + ins.length);
  return out;
}

function pickMark(r: Rng, m: StreamMap, len: number): number {
  const marks = m.marks.filter((x) => x <= len);
  return marks.length ? r.pick(marks) : r.int(len + 1);
}

export type MutationName =
  | 'bitflip'
  | 'byte'
  | 'insert'
  | 'delete'
  | 'truncate'
  | 'truncate-at-record'
  | 'splice'
  | 'field'
  | 'dup-record'
  | 'drop-record'
  | 'copy-range'
  | 'region';

/**
 * Applies one mutation. `other` is a second seed for splicing. Offsets in
 * `m.map` refer to the original seed: they stay roughly right after a
 * mutation that moved bytes, which is all a fuzzer needs.
 */
export function mutateOnce(r: Rng, bytes: Uint8Array, map: StreamMap, other: Mutable): { bytes: Uint8Array; op: MutationName } {
  const n = bytes.length;
  const roll = r.int(100);
  if (roll < 12 && n > 0) {
    const b = bytes.slice();
    const flips = 1 + r.skewed(3);
    for (let i = 0; i < flips; i++) {
      const at = r.chance(0.5) && map.fields.length ? r.pick(map.fields).at + r.int(8) : r.int(n);
      if (at < n) b[at]! ^= 1 << r.int(8);
    }
    return { bytes: b, op: 'bitflip' };
  }
  if (roll < 20 && n > 0) {
    const b = bytes.slice();
    b[r.int(n)] = r.chance(0.6) ? r.pick(INTERESTING8) : r.int(256);
    return { bytes: b, op: 'byte' };
  }
  if (roll < 27) {
    const len = 1 + r.skewed(r.chance(0.1) ? 13 : 5);
    const ins = r.chance(0.5) ? r.bytes(len) : new Uint8Array(len).fill(r.pick(INTERESTING8));
    const at = r.chance(0.5) ? pickMark(r, map, n) : r.int(n + 1);
    return { bytes: splice(bytes, at, 0, ins), op: 'insert' };
  }
  if (roll < 34 && n > 0) {
    const at = r.int(n);
    const len = Math.min(n - at, 1 + r.skewed(r.chance(0.2) ? 12 : 4));
    return { bytes: splice(bytes, at, len, new Uint8Array(0)), op: 'delete' };
  }
  if (roll < 39) return { bytes: bytes.subarray(0, r.int(n + 1)), op: 'truncate' };
  if (roll < 43) return { bytes: bytes.subarray(0, pickMark(r, map, n)), op: 'truncate-at-record' };
  if (roll < 51) {
    // Prefix of this stream + suffix of another, cut at record boundaries or anywhere.
    const cutA = r.chance(0.7) ? pickMark(r, map, n) : r.int(n + 1);
    const cutB = r.chance(0.7) ? pickMark(r, other.map, other.bytes.length) : r.int(other.bytes.length + 1);
    const out = new Uint8Array(cutA + other.bytes.length - cutB);
    out.set(bytes.subarray(0, cutA), 0);
    out.set(other.bytes.subarray(cutB), cutA);
    return { bytes: out, op: 'splice' };
  }
  if (roll < 75 && map.fields.length) {
    const b = bytes.slice();
    const f = r.pick(map.fields);
    if (f.at + f.size > n) return { bytes: b, op: 'field' };
    const old = readField(b, f);
    const bits = f.size * 8;
    const v = r.chance(0.8) ? r.pick(extremes(bits, old, f.kind)) : r.int(2 ** Math.min(bits, 32)) * (bits === 64 && r.chance(0.3) ? 2 ** 21 : 1);
    writeField(b, f, v);
    return { bytes: b, op: 'field' };
  }
  if (roll < 82 && map.marks.length > 1) {
    const i = r.int(map.marks.length - 1);
    const from = map.marks[i]!;
    const to = map.marks[i + 1]!;
    if (to > n) return { bytes: bytes.slice(), op: 'dup-record' };
    if (r.chance(0.5)) {
      const at = r.chance(0.5) ? to : pickMark(r, map, n);
      const times = 1 + r.skewed(r.chance(0.05) ? 8 : 2);
      const rec = bytes.subarray(from, to);
      const ins = new Uint8Array(rec.length * times);
      for (let k = 0; k < times; k++) ins.set(rec, k * rec.length);
      return { bytes: splice(bytes, at, 0, ins), op: 'dup-record' };
    }
    return { bytes: splice(bytes, from, to - from, new Uint8Array(0)), op: 'drop-record' };
  }
  if (roll < 88 && n > 1) {
    const b = bytes.slice();
    const len = 1 + r.int(Math.min(n, 64));
    const from = r.int(n - len + 1);
    const to = r.int(n - len + 1);
    b.copyWithin(to, from, from + len);
    return { bytes: b, op: 'copy-range' };
  }
  if (map.regions.length) {
    // Inside an XBZRLE delta, zlib stream, page, device data or the vmdesc JSON.
    const g = r.pick(map.regions);
    if (g.at + g.len > n) return { bytes: bytes.slice(), op: 'region' };
    const b = bytes.slice();
    const k = 1 + r.skewed(3);
    for (let i = 0; i < k; i++) {
      const at = g.at + r.int(g.len);
      if (g.kind === 'json') b[at] = r.pick([0x7b, 0x7d, 0x5b, 0x5d, 0x22, 0x2c, 0x3a, 0x00, 0xff, 0xc3, 0x30, 0x20]);
      else if (g.kind === 'device') b[at] = r.pick([0x7e, 0x04, 0x00, 0x06, r.int(256)]);
      else if (g.kind === 'xbzrle') b[at] = r.pick([0x00, 0x01, 0x7f, 0x80, 0x81, 0xff, r.int(256)]);
      else b[at] = r.int(256);
    }
    return { bytes: b, op: 'region' };
  }
  return { bytes: bytes.slice(), op: 'byte' };
}

/** 1 to 4 stacked mutations (mostly 1). */
export function mutate(r: Rng, seed: Mutable, other: Mutable): { bytes: Uint8Array; ops: MutationName[] } {
  let bytes = seed.bytes;
  const ops: MutationName[] = [];
  const count = 1 + (r.chance(0.35) ? r.int(4) : 0);
  for (let i = 0; i < count; i++) {
    const m = mutateOnce(r, bytes, seed.map, other);
    bytes = m.bytes;
    ops.push(m.op);
  }
  return { bytes, ops };
}
