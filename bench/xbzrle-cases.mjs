// Page pairs for the XBZRLE benchmark, generated from a fixed seed so every
// run (and the C baseline, which reads them from a file) sees the same bytes.

import '../dist/node/install.js'; // Node's codecs and worker pool, as the package's node condition loads them
import { mulberry32 } from '../dist/fuzz/rng.js';

export const PAGE_SIZE = 4096;

function randomPage(rand, size) {
  const page = new Uint8Array(size);
  for (let i = 0; i < size; i++) page[i] = (rand() * 256) | 0;
  return page;
}

/** A value different from `b`. */
function changed(rand, b) {
  return b ^ (1 + ((rand() * 255) | 0));
}

const mutators = {
  // (a) 4 consecutive bytes changed in every KiB, at a random place in it.
  'a: 4 B per KiB': (rand, old) => {
    const page = old.slice();
    for (let k = 0; k < page.length; k += 1024) {
      const at = k + ((rand() * 1021) | 0);
      for (let j = at; j < at + 4; j++) page[j] = changed(rand, page[j]);
    }
    return page;
  },
  // (b) and (c): each byte changed independently with probability p.
  'b: 1% random bytes': (rand, old) => scatter(rand, old, 0.01),
  'c: 10% random bytes': (rand, old) => scatter(rand, old, 0.1),
  // (d) new random content: long differing runs broken where bytes match by chance; overflows.
  'd: page rewritten': (rand, old) => randomPage(rand, old.length),
  // (e) one contiguous 2 KiB block rewritten: long copies in both directions.
  'e: 2 KiB block rewritten': (rand, old) => {
    const page = old.slice();
    const at = 8 * ((rand() * 256) | 0);
    for (let j = at; j < at + 2048; j++) page[j] = changed(rand, page[j]);
    return page;
  },
};

function scatter(rand, old, p) {
  const page = old.slice();
  for (let j = 0; j < page.length; j++) if (rand() < p) page[j] = changed(rand, page[j]);
  return page;
}

/**
 * @returns {{name: string, pairs: {old: Uint8Array, new: Uint8Array}[]}[]}
 */
export function makeCases(pairsPerCase = 64, seed = 0x5eed) {
  const rand = mulberry32(seed); // src/fuzz/rng.ts, the same generator the tests use
  return Object.entries(mutators).map(([name, mutate]) => {
    const pairs = [];
    for (let p = 0; p < pairsPerCase; p++) {
      const old = randomPage(rand, PAGE_SIZE);
      pairs.push({ old, new: mutate(rand, old) });
    }
    return { name, pairs };
  });
}

/** The file layout bench/native/xbzrle.c reads (little-endian u32 fields). */
export function serializeCases(cases) {
  const parts = [];
  const u32 = (v) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v, true);
    parts.push(b);
  };
  u32(cases.length);
  for (const c of cases) {
    const name = new TextEncoder().encode(c.name);
    u32(name.length);
    parts.push(name);
    u32(PAGE_SIZE);
    u32(c.pairs.length);
    for (const p of c.pairs) parts.push(p.old, p.new);
  }
  const out = new Uint8Array(parts.reduce((n, b) => n + b.length, 0));
  let at = 0;
  for (const b of parts) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}
