/** mulberry32 (src/fuzz/rng.ts): a tiny seedable PRNG for reproducible test data; returns [0, 1). */
export { mulberry32 as prng } from '../../src/fuzz/rng.js';
