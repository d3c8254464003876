import { prng } from './prng.js';

/** A dump series ending in `last`: each earlier dump differs in a few bytes of some pages. */
export function dumpSeries(last: Uint8Array, count: number, seed = 7): Uint8Array[] {
  const dumps = [last];
  // mulberry32 (an LCG's low bits repeat too soon for byte picks), as 32-bit integers
  const next = prng(seed);
  const rand = () => Math.floor(next() * 2 ** 32);
  for (let i = 1; i < count; i++) {
    const d = dumps[0]!.slice();
    for (let p = 0; p < 300; p++) {
      const page = 2048 + p; // the same 300 "hot" pages at 8 MiB change every iteration
      for (let k = 0; k < 1 + (rand() % 12); k++) d[page * 4096 + (rand() % 4096)] ^= 1 + (rand() % 255);
    }
    if (i % 2 === 1) d.fill(0x5a, 2100 * 4096, 2101 * 4096); // a fully rewritten page: XBZRLE overflow
    dumps.unshift(d);
  }
  return dumps;
}
