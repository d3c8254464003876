import { type PagePool, ThreadPool } from '../stream/pool/thread-pool.js';
import type { PoolTask } from '../stream/pool/tasks.js';
import type { MultifdRelayOptions } from './recode.js';
import { type RecodeResult, type RecodeTask, recodeError, runRecodeTask } from './pool-tasks.js';
import { InlinePool } from '../stream/pool/pool.js';

/** dist/multifd/pool-worker.js, also from src/ under a TypeScript runner and inside the bundled CLI. */
function recodeWorkerUrl(): URL {
  const here = new URL(import.meta.url);
  if (here.pathname.endsWith('.ts')) return new URL('../../dist/multifd/pool-worker.js', here);
  if (here.pathname.endsWith('/cli/main.js')) return new URL('../multifd/pool-worker.js', here); // scripts/bundle-cli.mjs
  return new URL('./pool-worker.js', here);
}

/**
 * Workers for multifd channels: W ThreadPools of one worker each (the repo's pool, with the
 * multifd worker entry), so a channel is pinned to one worker for its whole life — its
 * compression state is there — and a worker serves one channel at a time while there are at
 * least as many workers as channels. A new channel goes to the worker with the fewest open.
 */
export class MultifdPool {
  private readonly workers: { pool: PagePool; open: number }[] = [];
  private nextKey = 1;

  /** `inline`: run the same tasks in this thread (tests compare the two paths). */
  constructor(size: number, inline = false) {
    for (let i = 0; i < size; i++)
      this.workers.push({
        pool: inline ? new InlinePool((t) => runRecodeTask(t as unknown as RecodeTask) as never) : new ThreadPool(1, recodeWorkerUrl()),
        open: 0,
      });
  }

  get size(): number {
    return this.workers.length;
  }

  /** Channels open on each worker (for tests and the relay's summary). */
  get load(): number[] {
    return this.workers.map((w) => w.open);
  }

  /** A recoder for one channel, pinned to the least loaded worker; `write` gets each task's output (headers and payloads) in order. */
  channel(options: MultifdRelayOptions, write: (c: Uint8Array) => void, onError: (e: Error) => void, pageSize = 4096, label = ''): PooledRecoder {
    let i = 0;
    this.workers.forEach((x, j) => {
      if (x.open < this.workers[i]!.open) i = j;
    });
    const w = this.workers[i]!;
    w.open++;
    return new PooledRecoder(w.pool, i, this.nextKey++, { options, pageSize, label }, write, onError, () => w.open--);
  }

  close(): Promise<void> {
    return Promise.all(this.workers.map((w) => w.pool.close())).then(() => {});
  }
}

/** Source bytes batched per task at most (a socket delivers 64 KiB at a time). */
const MAX_TASK_BYTES = 1 << 20;
/** Tasks of one channel on its worker at once: the next batch waits there while one runs. */
const DEPTH = 2;

/**
 * One multifd channel re-encoded on its worker: source chunks are batched while the worker is
 * busy (at most DEPTH tasks out), results come back in order and are written in order. The
 * output is byte for byte the inline MultifdRecoder's: same packets, same compression state.
 */
export class PooledRecoder {
  /** Source chunks not yet sent, each with whether its buffer may be transferred to the worker as it is. */
  private pending: { c: Uint8Array; own: boolean }[] = [];
  private pendingBytes = 0;
  private inFlight = 0;
  private opened = false;
  private ended = false;
  private failed = false;
  private closed = false;
  private chain: Promise<void> = Promise.resolve();
  /** Bytes accepted but not yet written out (queued here or on the worker). */
  backlog = 0;
  packets = 0;
  private resolveEnd!: () => void;
  private rejectEnd!: (e: Error) => void;
  /** Settles once the end was processed and its output written. */
  readonly finished = new Promise<void>((res, rej) => {
    this.resolveEnd = res;
    this.rejectEnd = rej;
  });
  /** Called after output was written and the backlog shrank (the relay resumes its source). */
  onProgress: (() => void) | undefined;
  /** Wraps the writes of one task's output (a relay corks its socket: one writev instead of a write per header and payload). */
  batch: (writeAll: () => void) => void = (w) => w();

  constructor(
    private readonly pool: PagePool,
    /** Which of the MultifdPool's workers holds this channel's state. */
    readonly worker: number,
    private readonly key: number,
    private readonly open: NonNullable<RecodeTask['open']>,
    private readonly write: (c: Uint8Array) => void,
    private readonly onError: (e: Error) => void,
    private readonly release: () => void,
  ) {
    this.finished.catch(() => {}); // reported through onError
  }

  /**
   * Queues source bytes. `transfer`: the chunk is the only view of its whole buffer and the caller is done
   * with it (a socket read), so the buffer goes to the worker as it is instead of being copied.
   */
  push(chunk: Uint8Array, transfer = false): void {
    if (this.ended || this.failed || chunk.length === 0) return;
    const own = transfer && chunk.byteOffset === 0 && chunk.buffer instanceof ArrayBuffer && chunk.byteLength === chunk.buffer.byteLength;
    this.pending.push({ c: chunk, own });
    this.pendingBytes += chunk.length;
    this.backlog += chunk.length;
    this.pump();
  }

  /** The source closed: the last bytes, then the end (a cut packet is TRUNCATED). */
  end(): Promise<void> {
    if (!this.ended) {
      this.ended = true;
      this.pump();
    }
    return this.finished;
  }

  private pump(): void {
    while (!this.failed && this.inFlight < DEPTH && (this.pendingBytes > 0 || (this.ended && !this.closed))) {
      const chunks = this.takePending();
      const last = this.ended && this.pendingBytes === 0;
      const task: RecodeTask = { op: 'multifd-recode', key: this.key };
      if (!this.opened) {
        task.open = this.open;
        this.opened = true;
      }
      if (chunks.length > 0) task.chunks = chunks;
      if (last) {
        task.end = true;
        this.closed = true;
      }
      this.inFlight++;
      const consumed = chunks.reduce((n, c) => n + c.length, 0);
      const run = this.pool.run(
        task as unknown as PoolTask,
        chunks.map((c) => c.buffer as ArrayBuffer),
      ) as unknown as Promise<RecodeResult>;
      this.chain = this.chain.then(() =>
        run.then(
          (r) => this.done(r, consumed, last),
          (e: Error) => this.fail(e),
        ),
      );
    }
  }

  /**
   * Up to MAX_TASK_BYTES of pending chunks, each owning its buffer (transferred to the worker): socket reads go
   * as they are; a chunk that views a larger buffer is copied.
   */
  private takePending(): Uint8Array[] {
    let n = 0;
    let k = 0;
    while (k < this.pending.length && (k === 0 || n + this.pending[k]!.c.length <= MAX_TASK_BYTES)) n += this.pending[k++]!.c.length;
    this.pendingBytes -= n;
    return this.pending.splice(0, k).map((p) => (p.own ? p.c : new Uint8Array(p.c))); // (a copy even of a Buffer, whose slice() is a view)
  }

  private done(r: RecodeResult, consumed: number, last: boolean): void {
    if (this.failed) return;
    this.inFlight--;
    if (r.out.length > 0)
      this.batch(() => {
        for (const c of r.out) this.write(c);
      });
    this.packets = r.packets;
    this.backlog -= consumed;
    const e = recodeError(r);
    if (e) {
      this.fail(e);
      return;
    }
    if (last) {
      this.release();
      this.resolveEnd();
      return;
    }
    this.onProgress?.();
    this.pump();
  }

  private fail(e: Error): void {
    if (this.failed) return;
    this.failed = true;
    this.pending = [];
    this.pendingBytes = 0;
    this.release();
    this.rejectEnd(e);
    this.onError(e);
  }
}
