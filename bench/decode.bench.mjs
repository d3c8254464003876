// Decode throughput on the largest committed real-QEMU fixture and on the one full of QEMU's zlib
// pages, against a native floor measured in the same run (memcpy of the same bytes). QEMU's own
// save/load speed on the same RAM is in bench/qemu-compare.mjs.
// Run: npm run build && node bench/decode.bench.mjs
import { readdirSync } from 'node:fs';
import { Bench } from 'tinybench';
import { CONFIGS, FIXTURES_DIR, loadFixture } from '../fixtures/qemu/lib.mjs';
import { decodeAll, transcodeBytes } from '../dist/index.node.js';
import { RamImage, StatsCollector } from '../dist/sinks.js';

// The largest stream by raw size, and the fixture full of QEMU's zlib pages (its cost is inflate).
const bySize = CONFIGS.map((c) => c.name)
  .filter((n) => readdirSync(FIXTURES_DIR).includes(n))
  .map((n) => ({ n, size: loadFixture(n).stream.length }))
  .sort((a, b) => b.size - a.size);
const targets = [bySize[0].n, 'compress-l1'];

for (const name of targets) {
  const fx = loadFixture(name);
  const stream = new Uint8Array(fx.stream.buffer, fx.stream.byteOffset, fx.stream.length);
  const MB = stream.length / 1e6;

  function decodeToRam() {
    const ram = new RamImage();
    let pages = 0;
    decodeAll(stream, (ev) => {
      if (ev.type === 'ram-blocks') ram.setBlocks(ev.blocks);
      else if (ev.type === 'page') {
        ram.apply(ev);
        pages++;
      }
    });
    return { ram, pages };
  }

  // Check the output before timing it.
  const { ram: check, pages } = decodeToRam();
  if (!fx.config.capabilities['x-ignore-shared'] && Buffer.compare(Buffer.from(check.blocks.get('pc.ram')), fx.ram) !== 0) {
    throw new Error('decode does not reproduce the ground truth; refusing to time it');
  }

  const copy = new Uint8Array(stream.length);
  const bench = new Bench({ time: 2000, warmup: true });
  bench
    .add('native floor: memcpy of the stream', () => copy.set(stream))
    .add('decode (events only, inspect)', () => {
      const s = new StatsCollector();
      decodeAll(stream, s.handle);
    })
    .add('decode → RAM image', () => decodeToRam())
    .add('transcode → plain QEMU stream', () => transcodeBytes(stream));
  await bench.run();

  const rows = bench.tasks.map((t) => {
    const ms = t.result.latency?.mean ?? t.result.mean;
    return { task: t.name, ms, mbps: MB / (ms / 1000) };
  });
  console.log(`\nfixture ${name}: ${stream.length} bytes, ${pages} page records (${((pages * 4096) / 1e6).toFixed(0)} MB of pages)\n`);
  console.log('| task | ms | stream MB/s | pages/s | vs memcpy |');
  console.log('|---|---:|---:|---:|---:|');
  const floor = rows[0].ms;
  for (const r of rows) {
    const pps = r === rows[0] ? '' : (pages / (r.ms / 1000)).toFixed(0);
    console.log(`| ${r.task} | ${r.ms.toFixed(2)} | ${r.mbps.toFixed(0)} | ${pps} | ${(floor / r.ms).toFixed(3)}× |`);
  }
}
