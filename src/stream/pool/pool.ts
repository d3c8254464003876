import type { PoolResult, PoolTask } from './tasks.js';

/** What the ordered writer and applier need from a pool: run a batch, shut down. */
export interface PagePool {
  readonly size: number;
  run(task: PoolTask, transfer?: ArrayBuffer[]): Promise<PoolResult>;
  /** Stops the workers; pending and later runs reject. Idempotent. */
  close(): Promise<void>;
}

/** A worker failed: it threw, exited or could not start. The stream it served fails with this. */
export class PoolError extends Error {
  override readonly name = 'PoolError';
}

/**
 * Runs tasks in the calling thread, asynchronously: the same contract as a
 * worker pool, for tests and for environments without workers. `delay` (a
 * test hook) decides per task how many event-loop turns its result waits,
 * so tests can reorder results under a seeded schedule.
 */
export class InlinePool implements PagePool {
  readonly size = 1;
  private closed = false;

  constructor(
    private readonly run1: (task: PoolTask) => PoolResult,
    private readonly delay: (task: PoolTask) => number = () => 0,
  ) {}

  async run(task: PoolTask): Promise<PoolResult> {
    if (this.closed) throw new PoolError('the page pool is closed');
    for (let turns = this.delay(task); turns > 0; turns--) await nextTurn();
    try {
      return this.run1(task);
    } catch (e) {
      throw new PoolError(`page task threw: ${(e as Error).message}`);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/** One event-loop turn: setImmediate where there is one (Node, Bun), else a zero timeout. */
function nextTurn(): Promise<void> {
  const immediate = (globalThis as { setImmediate?: (f: () => void) => void }).setImmediate;
  return new Promise<void>((r) => (immediate ? immediate(r) : setTimeout(r, 0)));
}
