import { Piscina } from 'piscina';
import type { PoolResult, PoolTask } from './tasks.js';
import { PoolError, workerUrl, type PagePool } from './thread-pool.js';

/**
 * A page pool on piscina, the kept worker_threads pool library. The default
 * is migstream's ThreadPool, which measured faster (thread-pool.ts); this
 * one is the drop-in alternative (`pool: new PiscinaPool(n)`).
 * Any failed batch (a worker that threw, exited or died) breaks the pool:
 * that batch and every later one reject with PoolError, and the workers are
 * destroyed, so a failing stream never hangs on its pool.
 */
export class PiscinaPool implements PagePool {
  readonly size: number;
  private readonly piscina: Piscina<PoolTask, PoolResult>;
  private broken: PoolError | undefined;
  private closed = false;
  private readonly inflight = new Set<Promise<PoolResult>>();

  constructor(size: number) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`a pool needs at least one worker, got ${size}`);
    this.size = size;
    this.piscina = new Piscina({
      filename: workerUrl('piscina-worker').href,
      minThreads: size,
      maxThreads: size,
      idleTimeout: 60_000,
      // one batch per worker plus one queued each: the callers bound what is in flight
      concurrentTasksPerWorker: 1,
    });
    this.piscina.on('error', (e: Error) => this.fail(new PoolError(`page worker failed: ${e.message}`)));
  }

  async run(task: PoolTask, transfer: ArrayBuffer[] = []): Promise<PoolResult> {
    if (this.broken) throw this.broken;
    if (this.closed) throw new PoolError('the page pool is closed');
    const pending = this.piscina.run(task, { transferList: transfer });
    this.inflight.add(pending);
    try {
      return await pending;
    } catch (e) {
      const message = (e as Error)?.message ?? String(e);
      const error = new PoolError(/exited|Terminating/.test(message) ? `page worker failed: ${message}` : `page worker threw: ${message}`);
      this.fail(error);
      throw this.broken ?? error;
    } finally {
      this.inflight.delete(pending);
    }
  }

  private fail(error: PoolError): void {
    if (this.broken) return;
    this.broken = error;
    void this.close();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Batches still running finish first (at most 2 s): Node 20 aborts the whole process when a worker
    // is terminated between creating a node:zlib handle and initialising it.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, 2000);
      timer.unref?.();
    });
    await Promise.race([Promise.allSettled([...this.inflight]), grace]);
    clearTimeout(timer);
    await this.piscina.destroy();
  }
}
