// Multifd channels re-encoded inline (one thread, what the relay does without --workers) against the
// worker pool (relay --workers N: each channel pinned to its own worker), on the same channel bytes,
// side by side. Input: a multifd split of the cached 512 MiB Linux guest stream (`transcode STREAM DIR
// --multifd 2`, made here on first use), fed in 64 KiB chunks as a socket delivers them, channels
// interleaved. Usage: npm run build && node bench/multifd-pool.mjs [--channels 2] [--runs 2]
// SPDX-License-Identifier: MIT
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import '../dist/node/install.js';
import { MultifdPool } from '../dist/multifd/pool-recoder.js';
import { MultifdRecoder } from '../dist/multifd/recode.js';

const arg = (n, d) => (process.argv.includes(n) ? process.argv[process.argv.indexOf(n) + 1] : d);
const CH = Number(arg('--channels', 2));
const runs = Number(arg('--runs', 2));
const cacheDir = join(import.meta.dirname, '..', '.cache', 'line-rate');
const stream = join(
  cacheDir,
  readdirSync(cacheDir).find((f) => f.endsWith('.stream')),
);
const work = mkdtempSync(join(tmpdir(), 'migstream-mfd-pool-'));
const CLI = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');
try {
  const dir = join(work, 'split');
  if (!existsSync(dir))
    execFileSync(process.execPath, [CLI, 'transcode', stream, dir, '--multifd', String(CH), '--multifd-compression', 'none'], { stdio: 'ignore' });
  const channels = Array.from({ length: CH }, (_, i) => readFileSync(join(dir, `conn-${i + 1}.s2d`)));
  const total = channels.reduce((n, c) => n + c.length, 0);
  const STEP = 65536;
  const settings = [
    { name: 'zstd-3 --multifd-long', compression: 'zstd', level: 3, long: true },
    { name: 'zstd-1', compression: 'zstd', level: 1 },
    { name: 'brotli-5', compression: 'brotli', level: 5 },
  ];
  console.log(
    `${CH} channels, ${(total / 2 ** 20).toFixed(0)} MiB; load average ${loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}`,
  );
  console.log('| setting | inline MiB/s | pool MiB/s (1 worker per channel) | pool / inline |');
  console.log('|---|---:|---:|---:|');
  for (const s of settings) {
    let bestInline = 0;
    let bestPool = 0;
    for (let r = 0; r < runs; r++) {
      // inline: every channel's recoder on this thread, chunks interleaved
      let t0 = performance.now();
      let outInline = 0;
      const recs = channels.map(() => new MultifdRecoder(s, (c) => (outInline += c.length)));
      for (let at = 0; at < Math.max(...channels.map((c) => c.length)); at += STEP)
        channels.forEach((c, i) => at < c.length && recs[i].push(c.subarray(at, at + STEP)));
      for (const r of recs) r.end();
      bestInline = Math.max(bestInline, total / 2 ** 20 / ((performance.now() - t0) / 1000));
      const pool = new MultifdPool(CH);
      try {
        t0 = performance.now();
        let outPool = 0;
        const pr = channels.map(() =>
          pool.channel(
            s,
            (c) => (outPool += c.length),
            (e) => {
              throw e;
            },
          ),
        );
        for (let at = 0; at < Math.max(...channels.map((c) => c.length)); at += STEP) {
          channels.forEach((c, i) => at < c.length && pr[i].push(c.slice(at, at + STEP)));
          // a socket delivers between event-loop turns: let results come back
          if ((at / STEP) % 16 === 15) await new Promise((res) => setImmediate(res));
        }
        await Promise.all(pr.map((p) => p.end()));
        bestPool = Math.max(bestPool, total / 2 ** 20 / ((performance.now() - t0) / 1000));
        if (outPool !== outInline) throw new Error(`${s.name}: pool wrote ${outPool} bytes, inline ${outInline}`);
      } finally {
        await pool.close();
      }
    }
    console.log(`| ${s.name} | ${bestInline.toFixed(1)} | ${bestPool.toFixed(1)} | ${(bestPool / bestInline).toFixed(2)}× |`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
