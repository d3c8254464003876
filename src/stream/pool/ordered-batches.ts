import { compactQueue } from './compact.js';
import { Wakeup } from './wakeup.js';

/** A batch of items for one worker task: what it counts against the in-flight bound. */
export interface Batch {
  /** Page units it holds (a page is one; a block chunk of n bytes is ceil(n / pageSize)). */
  units: number;
}

/** What an owner of the queue does with its entries and batches. */
export interface OrderedBatchHooks<E, B extends Batch> {
  /** Hands the head entry on; false: it is not ready (its batch has not landed), it stays at the head. */
  deliver(entry: E): boolean;
  /** Sends a batch to the pool; settles once its result is stored on the batch, rejects with the task's error. */
  dispatch(batch: B): Promise<unknown>;
  /** A batch's result landed, before the queue delivers from its head (landing-order applies). */
  landed?(batch: B): void;
}

/**
 * The ordered in-flight batch queue under both pool directions (the pooled
 * decoder's DecompressQueue, the pooled encoder): entries leave in
 * submission order while their batches run on workers. Batches fill per
 * lane (pages, block chunks) and go out when full, when a drain needs them,
 * or at finish(); the in-flight bound counts page units queued and not yet
 * delivered; the first error (a worker's, or a throwing deliver) stops
 * delivery and reaches the next drain() or finish().
 */
export class OrderedBatchQueue<E, B extends Batch> {
  private readonly hooks: OrderedBatchHooks<E, B>;
  private readonly entries: E[] = [];
  private head = 0;
  private readonly filling: (B | undefined)[];
  /** Page units queued and not yet settled. */
  private queued = 0;
  /** Batches sent to the pool whose result has not come back. */
  private running = 0;
  private error: Error | undefined;
  private readonly wakeup = new Wakeup();

  constructor(hooks: OrderedBatchHooks<E, B>, lanes: number) {
    this.hooks = hooks;
    this.filling = new Array<B | undefined>(lanes).fill(undefined);
  }

  /** Nothing waits: an entry that needs no worker may be handed on at once instead of queued. */
  get idle(): boolean {
    return this.head === this.entries.length;
  }

  /** Page units queued and not yet settled. */
  get units(): number {
    return this.queued;
  }

  get failure(): Error | undefined {
    return this.error;
  }

  /** Queues an entry behind the others; `units` count against the bound until settle(). */
  push(entry: E, units = 0): void {
    this.entries.push(entry);
    this.queued += units;
  }

  /** An entry's units are done with (delivered, or applied as its result landed). */
  settle(units: number): void {
    this.queued -= units;
  }

  /** The batch filling in `lane`, started with `start()` when there is none. */
  batch(lane: number, start: () => B): B {
    let b = this.filling[lane];
    if (!b) {
      b = start();
      this.filling[lane] = b;
    }
    return b;
  }

  /** The batch filling in `lane`, if any. */
  current(lane: number): B | undefined {
    return this.filling[lane];
  }

  /** Sends the batch filling in `lane` (all lanes when omitted) to the pool. */
  submit(lane?: number): void {
    for (let l = lane ?? 0; l <= (lane ?? this.filling.length - 1); l++) {
      const b = this.filling[l];
      if (!b) continue;
      this.filling[l] = undefined;
      this.running++;
      this.hooks.dispatch(b).then(
        () => {
          this.running--;
          try {
            this.hooks.landed?.(b);
          } catch (e) {
            this.fail(e as Error);
          }
          this.pump();
          this.wakeup.notify();
        },
        (e: unknown) => {
          this.running--;
          this.fail(e as Error);
        },
      );
    }
  }

  /** Records the first failure and wakes a waiting drain(). */
  fail(e: Error): void {
    this.error ??= e;
    this.wakeup.notify();
  }

  /** Delivers from the head while entries are ready. */
  pump(): void {
    const q = this.entries;
    try {
      while (this.head < q.length && !this.error) {
        if (!this.hooks.deliver(q[this.head]!)) break;
        q[this.head++] = undefined as E;
      }
    } catch (e) {
      this.fail(e as Error);
    }
    this.head = compactQueue(q, this.head);
  }

  /**
   * Waits until at most `limit` units are queued (at 0: until every entry is
   * delivered). Throws the first failure. A partly filled batch goes out
   * when sending it can bring the count under the limit, or when no batch is
   * running that could wake this wait.
   */
  async drain(limit: number): Promise<void> {
    this.pump();
    while (!this.error && (this.queued > limit || (limit === 0 && !this.idle))) {
      let filled = 0;
      for (const b of this.filling) filled += b?.units ?? 0;
      if (this.running === 0 || (filled > 0 && this.queued - filled <= limit)) this.submit();
      if (this.running === 0) {
        // nothing runs that could wake us: the head waits on no batch (a bug in the owner's rules), fail rather than hang
        this.pump();
        if (!this.error && this.running === 0 && (this.queued > limit || (limit === 0 && !this.idle))) {
          throw new Error('ordered batch queue: entries wait with no batch running');
        }
        continue;
      }
      await this.wakeup.wait();
      this.pump();
    }
    if (this.error) throw this.error;
  }

  /** Sends what is filling and waits until every entry is delivered. */
  async finish(): Promise<void> {
    this.submit();
    await this.drain(0);
  }
}
