import { Worker } from 'node:worker_threads';
import type { PoolResult, PoolTask } from './tasks.js';
import { PoolError, type PagePool } from './pool.js';

export { InlinePool, PoolError, type PagePool } from './pool.js';

/** Worker threads alive now, over every ThreadPool (tests check that an abort leaves none). */
export let liveWorkerThreads = 0;

/** dist/stream/pool/worker.js, also when this module runs from src/ under a TypeScript runner. */
export function workerUrl(name = 'worker'): URL {
  const here = new URL(import.meta.url);
  if (here.pathname.endsWith('.ts')) return new URL(`../../../dist/stream/pool/${name}.js`, here);
  if (here.pathname.endsWith('/cli/main.js')) return new URL(`../stream/pool/${name}.js`, here); // inside the bundled CLI (scripts/bundle-cli.mjs)
  return new URL(`./${name}.js`, here);
}

interface Job {
  id: number;
  task: PoolTask;
  transfer: ArrayBuffer[];
  resolve(r: PoolResult): void;
  reject(e: Error): void;
}

interface Slot {
  worker: Worker;
  /** Batches posted to this worker, oldest first (it answers in order). */
  jobs: Job[];
}

/**
 * The parent's Node flags minus those a worker refuses: `--input-type` (a
 * parent run as `node --input-type=module -e …`) makes every worker fail to start.
 */
export function workerExecArgv(): string[] {
  return process.execArgv.filter((a) => !a.startsWith('--input-type'));
}

/** Batches posted ahead to each worker, so it never waits for the main thread between two. */
const DEPTH = 2;

/**
 * migstream's own thin worker_threads pool, the default: up to two batches
 * posted per worker, a FIFO of waiting batches, result buffers transferred
 * back. Chosen over piscina and tinypool by bench/pool.bench.mjs: about a
 * third of their per-batch overhead, which with 64-page batches made LZ4
 * 45–65% and zlib 7–16% faster (docs/compression.md); PiscinaPool stays as
 * the kept-library alternative behind the same PagePool interface.
 * Any failure (a worker that threw, exited or errored) breaks the pool:
 * every pending and later batch rejects with PoolError and the workers are
 * stopped (after their current batch, terminated if they hang), so nothing waits forever.
 */
export class ThreadPool implements PagePool {
  readonly size: number;
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private nextId = 1;
  private broken: PoolError | undefined;
  private closed = false;

  constructor(size: number, url: URL = workerUrl()) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`a pool needs at least one worker, got ${size}`);
    this.size = size;
    for (let i = 0; i < size; i++) {
      const worker = new Worker(url, { execArgv: workerExecArgv() });
      const slot: Slot = { worker, jobs: [] };
      worker.on('message', (msg: { id: number; result?: PoolResult; error?: string }) => this.done(slot, msg));
      worker.on('error', (e) => this.fail(new PoolError(`page worker failed: ${e.message}`)));
      worker.on('exit', (code) => {
        if (!this.closed) this.fail(new PoolError(`page worker failed: worker exited with code ${code}`));
      });
      liveWorkerThreads++;
      worker.once('exit', () => liveWorkerThreads--);
      worker.unref();
      this.slots.push(slot);
    }
  }

  run(task: PoolTask, transfer: ArrayBuffer[] = []): Promise<PoolResult> {
    if (this.broken) return Promise.reject(this.broken);
    if (this.closed) return Promise.reject(new PoolError('the page pool is closed'));
    return new Promise<PoolResult>((resolve, reject) => {
      this.queue.push({ id: this.nextId++, task, transfer, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    // fill the emptiest workers first, one batch at a time
    for (let depth = 0; depth < DEPTH && this.queue.length > 0; depth++) {
      for (const slot of this.slots) {
        if (slot.jobs.length > depth || this.queue.length === 0) continue;
        const job = this.queue.shift()!;
        slot.jobs.push(job);
        slot.worker.ref(); // keep the process alive while a batch is out
        slot.worker.postMessage({ id: job.id, task: job.task }, job.transfer);
      }
    }
  }

  private done(slot: Slot, msg: { id: number; result?: PoolResult; error?: string }): void {
    const job = slot.jobs[0];
    if (!job || job.id !== msg.id) return;
    slot.jobs.shift();
    if (slot.jobs.length === 0) slot.worker.unref();
    if (msg.error !== undefined) {
      this.fail(new PoolError(`page worker threw: ${msg.error}`), job);
      return;
    }
    job.resolve(msg.result!);
    this.pump();
  }

  private fail(error: PoolError, job?: Job): void {
    job?.reject(error);
    if (this.broken) return;
    this.broken = error;
    for (const slot of this.slots) {
      for (const job of slot.jobs.splice(0)) job.reject(error);
    }
    for (const job of this.queue.splice(0)) job.reject(error);
    void this.close();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const closed = this.broken ?? new PoolError('the page pool is closed');
    for (const job of this.queue.splice(0)) job.reject(closed);
    for (const slot of this.slots) for (const job of slot.jobs.splice(0)) job.reject(closed); // their workers are terminated below
    await Promise.all(this.slots.map((s) => stopWorker(s.worker)));
  }
}

/** How long a worker may take to finish its current batch after being asked to stop. */
const STOP_GRACE_MS = 2000;

/**
 * Asks a worker to stop after the batch it is running, terminating it only if it does not within
 * STOP_GRACE_MS: Node 20 aborts the whole process ("close before init", node_zlib.cc) when a worker
 * is terminated between creating a node:zlib handle and initialising it, as deflateSync does.
 */
function stopWorker(worker: Worker): Promise<unknown> {
  if (worker.threadId < 0) return Promise.resolve(); // already exited
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => void worker.terminate().then(() => resolve()), STOP_GRACE_MS);
    worker.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    worker.postMessage({ stop: true });
    worker.ref(); // until it has exited
  });
}
