// Pool choice: the same page-compression batches through piscina, tinypool and
// migstream's ThreadPool (dist/), 1 and 2 workers. Run: node bench/pool.bench.mjs
import '../dist/node/install.js'; // Node's codecs and worker pool, as the package's node condition loads them
import { Piscina } from 'piscina';
import { Tinypool } from 'tinypool';
import { loadFixture } from '../fixtures/qemu/lib.mjs';
import { ThreadPool, workerUrl } from '../dist/stream/pool/thread-pool.js';
import { runTask } from '../dist/stream/pool/tasks.js';
import { isZeroPage } from '../dist/codec/zero.js';

const PAGE = 4096;
const BATCH = Number(process.env.BATCH ?? 64);
const ram = loadFixture('plain').ram;
const pages = [];
for (let o = 0; o < ram.length; o += PAGE) if (!isZeroPage(ram.subarray(o, o + PAGE))) pages.push(ram.subarray(o, o + PAGE));
// ~24 MiB of non-zero pages, cycled from the captured RAM
const total = 6144;
const batches = [];
for (let i = 0; i < total; i += BATCH) {
  const b = new Uint8Array(BATCH * PAGE);
  for (let k = 0; k < BATCH; k++) b.set(pages[(i + k) % pages.length], k * PAGE);
  batches.push(b);
}
const spec = { codec: process.env.CODEC ?? 'zlib', level: 1, acceleration: 1, impl: 'node' };
const task = (b) => ({ op: 'compress', spec, pageSize: PAGE, pages: b.slice() });
// check outputs before timing: every pool returns what runTask returns in-thread
const want = runTask(task(batches[0]));

// best of ROUNDS passes: on a shared machine interference only slows a pass down
const ROUNDS = Number(process.env.ROUNDS ?? 3);
async function time(name, run, close) {
  const got = await run(task(batches[0]));
  if (Buffer.compare(Buffer.from(got.data), Buffer.from(want.data)) !== 0) throw new Error(`${name}: wrong output`);
  let best = Infinity;
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now();
    const inflight = [];
    for (const b of batches) {
      inflight.push(run(task(b)));
      if (inflight.length >= 8) await inflight.shift();
    }
    await Promise.all(inflight);
    best = Math.min(best, performance.now() - t0);
  }
  await close();
  return { name, mbps: (total * PAGE) / 1e6 / (best / 1000) };
}

const rows = [];
for (const workers of [1, 2]) {
  const own = new ThreadPool(workers);
  rows.push({
    workers,
    ...(await time(
      'migstream ThreadPool',
      (t) => own.run(t, [t.pages.buffer]),
      () => own.close(),
    )),
  });
  const p = new Piscina({ filename: workerUrl('piscina-worker').href, minThreads: workers, maxThreads: workers, idleTimeout: 1e9 });
  rows.push({
    workers,
    ...(await time(
      'piscina 5.3.2',
      (t) => p.run(t, { transferList: [t.pages.buffer] }),
      () => p.destroy(),
    )),
  });
  const tp = new Tinypool({ filename: workerUrl('lib-worker').href, minThreads: workers, maxThreads: workers, isolateWorkers: false });
  rows.push({
    workers,
    ...(await time(
      'tinypool 2.2.0',
      (t) => tp.run(t, { transferList: [t.pages.buffer] }),
      () => tp.destroy(),
    )),
  });
}
console.log(`| pool | workers | MB/s (${spec.codec} level 1, ${BATCH}-page batches) |\n|---|---|---|`);
for (const r of rows) console.log(`| ${r.name} | ${r.workers} | ${r.mbps.toFixed(1)} |`);

// Batch buffers: a fresh (zeroed, later collected) 256 KiB buffer per batch against buffers reused
// once they come back, through an echo worker that does nothing else: the cost PooledEncoder's
// buffer reuse removes from the main thread. Best of ROUNDS, 4096 round trips, 8 in flight.
const { Worker } = await import('node:worker_threads');
const echo = new Worker(
  `require('node:worker_threads').parentPort.on('message', (m) => require('node:worker_threads').parentPort.postMessage(m, [m.pages.buffer]));`,
  { eval: true },
);
async function roundTrips(recycle) {
  const N = 4096;
  const free = [];
  let sent = 0;
  let got = 0;
  const t0 = performance.now();
  await new Promise((resolve) => {
    const send = () => {
      while (sent - got < 8 && sent < N) {
        const b = (recycle && free.pop()) || new Uint8Array(BATCH * PAGE);
        echo.postMessage({ id: sent++, pages: b }, [b.buffer]);
      }
    };
    echo.on('message', (m) => {
      if (recycle) free.push(m.pages);
      if (++got === N) resolve();
      else send();
    });
    send();
  });
  echo.removeAllListeners('message');
  return performance.now() - t0;
}
const buffers = { fresh: Infinity, recycled: Infinity };
for (let r = 0; r < ROUNDS; r++) {
  buffers.fresh = Math.min(buffers.fresh, await roundTrips(false));
  buffers.recycled = Math.min(buffers.recycled, await roundTrips(true));
}
await echo.terminate();
console.log(`\n| batch buffers (${BATCH} pages) | 4096 round trips to an echo worker |\n|---|---:|`);
console.log(`| fresh per batch | ${buffers.fresh.toFixed(0)} ms |\n| reused | ${buffers.recycled.toFixed(0)} ms |`);
