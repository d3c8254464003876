/**
 * Cases for the differential fuzzer: whole real-QEMU fixture streams (a
 * destination only loads a stream of its own machine and RAM size), damaged
 * with the fuzzer's mutators. A third of the cases aim the mutators at one
 * part of the stream (RAM headers, XBZRLE, zlib pages, page data, block
 * records, commands, device state, names, the vmdesc); a few use the plain
 * byte edits of the first trial. Every case is rebuilt from (seed, index).
 */
import { mutate, type MutationName } from './mutate.js';
import { Rng, caseSeed } from './rng.js';
import type { Field, Region, StreamMap } from './walk.js';

export interface FixtureBase {
  name: string;
  bytes: Uint8Array;
  map: StreamMap;
}

export interface DiffCase {
  index: number;
  fixture: string;
  bytes: Uint8Array;
  /** How it was made, e.g. "target:xbzrle field+bitflip". */
  how: string;
}

type Target = 'ram-header' | 'xbzrle' | 'zlib' | 'page' | 'block' | 'command' | 'device' | 'name' | 'vmdesc' | 'lengths' | 'marks';

const FIELD_TARGETS: Partial<Record<Target, (f: Field) => boolean>> = {
  'ram-header': (f) => f.kind === 'ramhdr',
  xbzrle: (f) => f.kind === 'len16',
  zlib: (f) => f.kind === 'len32',
  block: (f) => f.kind === 'blkhdr',
  command: (f) => f.kind === 'cmd16',
  lengths: (f) => f.kind === 'len8' || f.kind === 'len64' || f.kind === 'addr64' || f.kind === 'val32' || f.kind === 'id32' || f.kind === 'count32',
};
const REGION_TARGETS: Partial<Record<Target, (g: Region) => boolean>> = {
  xbzrle: (g) => g.kind === 'xbzrle',
  zlib: (g) => g.kind === 'zlib' || g.kind === 'lz4',
  page: (g) => g.kind === 'page',
  block: (g) => g.kind === 'chunk',
  device: (g) => g.kind === 'device',
  name: (g) => g.kind === 'name',
  vmdesc: (g) => g.kind === 'json',
};

/** The map restricted to one target, or undefined when the fixture has nothing of it. */
function focus(map: StreamMap, t: Target): StreamMap | undefined {
  const f = FIELD_TARGETS[t];
  const g = REGION_TARGETS[t];
  const fields = f ? map.fields.filter(f) : [];
  const regions = g ? map.regions.filter(g) : [];
  if (t === 'marks') return map;
  if (!fields.length && !regions.length) return undefined;
  return { ...map, fields, regions };
}

/** The first trial: bit flips, 8 × 0xff, inserts, deletes, 16 zero bytes; half of them in the first 64 KiB. */
function plainEdit(r: Rng, b: Uint8Array): { bytes: Uint8Array; op: string } {
  const at = r.chance(0.5) ? r.int(Math.min(b.length, 65536)) : r.int(b.length);
  const roll = r.int(6);
  if (roll === 0) {
    const out = b.slice();
    out[at]! ^= 1 << r.int(8);
    return { bytes: out, op: 'flip' };
  }
  if (roll === 1) {
    const out = b.slice();
    out.fill(0xff, at, Math.min(b.length, at + 8));
    return { bytes: out, op: 'ff8' };
  }
  if (roll === 2) {
    const ins = r.bytes(1 + r.int(16));
    const out = new Uint8Array(b.length + ins.length);
    out.set(b.subarray(0, at));
    out.set(ins, at);
    out.set(b.subarray(at), at + ins.length);
    return { bytes: out, op: 'insert' };
  }
  if (roll === 3) {
    const n = 1 + r.int(16);
    const out = new Uint8Array(b.length - Math.min(n, b.length - at));
    out.set(b.subarray(0, at));
    out.set(b.subarray(at + n), at);
    return { bytes: out, op: 'delete' };
  }
  if (roll === 4) {
    const out = b.slice();
    out.fill(0, at, Math.min(b.length, at + 16));
    return { bytes: out, op: 'zero16' };
  }
  return { bytes: b.subarray(0, r.chance(0.5) ? at : b.length - 1 - r.int(Math.min(b.length, 200_000))), op: 'truncate' };
}

const TARGETS: Target[] = ['ram-header', 'xbzrle', 'zlib', 'page', 'block', 'command', 'device', 'name', 'vmdesc', 'lengths', 'marks'];

/** Case `index` of run `seed`: fixtures in turn, so a run of N cases covers each about N / fixtures times. */
export function diffCase(seed: number, index: number, bases: readonly FixtureBase[]): DiffCase {
  const base = bases[index % bases.length]!;
  const r = new Rng(caseSeed(seed, index));
  const roll = r.int(100);
  if (roll < 15) {
    const e = plainEdit(r, base.bytes);
    return { index, fixture: base.name, bytes: e.bytes, how: `edit:${e.op}` };
  }
  if (roll < 50) {
    const present = TARGETS.map((t) => [t, focus(base.map, t)] as const).filter((x) => x[1]);
    const [t, map] = r.pick(present);
    const m = mutate(r, { bytes: base.bytes, map: map! }, { bytes: base.bytes, map: base.map });
    return { index, fixture: base.name, bytes: m.bytes, how: `target:${t} ${m.ops.join('+')}` };
  }
  // splices stay within the fixture: the stream resumes at another of its own records
  const m: { bytes: Uint8Array; ops: MutationName[] } = mutate(r, base, base);
  return { index, fixture: base.name, bytes: m.bytes, how: `mutate ${m.ops.join('+')}` };
}
