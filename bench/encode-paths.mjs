// Two ways to encode RAM dumps with compression on workers, timed alternately on the same dumps:
// "plain + transcode" (encode uncompressed records, then recompress them with transcodePooled: what
// `migstream encode --workers` did before 2026-11-22) and "encodeDumpsPooled" (pages go straight to
// the pool: what it does now). Both write the same bytes; best of ROUNDS.
//
//   npm run build && node bench/encode-paths.mjs          (the first four captured dumps)
//   ROUNDS=5 DUMPS=6 node bench/encode-paths.mjs
import '../dist/node/install.js'; // Node's codecs and worker pool, as the package's node condition loads them
import { readFileSync } from 'node:fs';
import { ensureDumps } from '../fixtures/dumps/lib.mjs';
import { encodeDumps } from '../dist/stream/dump-encoder.js';
import { encodeDumpsPooled, transcodePooled } from '../dist/stream/pool/drivers.js';
import { ThreadPool } from '../dist/stream/pool/thread-pool.js';

const ROUNDS = Number(process.env.ROUNDS ?? 3);
const { files } = await ensureDumps({ quiet: true });
const dumps = files.slice(0, Number(process.env.DUMPS ?? 4)).map((f) => new Uint8Array(readFileSync(f)));
const series = [{ idstr: 'pc.ram', dumps }];

console.log(`${dumps.length} dumps of ${dumps[0].length >> 20} MiB, best of ${ROUNDS} rounds\n`);
console.log('| codec | workers | plain + transcode | encodeDumpsPooled | speed-up |\n|---|---:|---:|---:|---:|');
for (const codec of ['zlib', 'lz4']) {
  for (const workers of [1, 2]) {
    const pool = new ThreadPool(workers);
    const best = { old: Infinity, now: Infinity };
    for (let round = 0; round < ROUNDS; round++) {
      let t = performance.now();
      const parts = [];
      encodeDumps(series, (c) => void parts.push(c.slice()), {});
      let a = 0;
      await transcodePooled(Buffer.concat(parts), (c) => void (a += c.length), { compress: { codec }, pool });
      best.old = Math.min(best.old, performance.now() - t);
      t = performance.now();
      let b = 0;
      await encodeDumpsPooled(series, (c) => void (b += c.length), { compress: { codec }, pool });
      best.now = Math.min(best.now, performance.now() - t);
      if (a !== b) throw new Error(`${codec}: the two paths wrote ${a} and ${b} bytes`);
    }
    await pool.close();
    console.log(`| ${codec} | ${workers} | ${best.old.toFixed(0)} ms | ${best.now.toFixed(0)} ms | ${(best.old / best.now).toFixed(2)}× |`);
  }
}
