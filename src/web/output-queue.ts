/**
 * What a stream has produced and its reader has not taken yet, with a
 * high-water mark: full() tells the producer to stop, room() when to go on.
 * The reader side takes items one at a time (a ReadableStream's pull).
 */
export class OutputQueue<T> {
  private items: T[] = [];
  private head = 0;
  /** Size of what is queued now, and the most it ever was. */
  bytes = 0;
  peak = 0;
  private ended = false;
  private error: { reason: unknown } | undefined;
  private roomWaiters: { resolve(): void; reject(e: unknown): void }[] = [];
  private dataWaiter: (() => void) | undefined;

  constructor(
    readonly highWaterMark: number,
    private readonly sizeOf: (item: T) => number,
  ) {}

  push(item: T): void {
    if (this.error || this.ended) return;
    this.items.push(item);
    this.bytes += this.sizeOf(item);
    if (this.bytes > this.peak) this.peak = this.bytes;
    this.wakeReader();
  }

  full(): boolean {
    return this.bytes > this.highWaterMark;
  }

  room(): Promise<void> {
    if (this.error) return Promise.reject(this.error.reason);
    if (!this.full()) return Promise.resolve();
    return new Promise((resolve, reject) => this.roomWaiters.push({ resolve, reject }));
  }

  /** The next item; undefined once the queue ended and is empty. Rejects with the failure. */
  async take(): Promise<T | undefined> {
    while (this.head === this.items.length) {
      if (this.error) throw this.error.reason;
      if (this.ended) return undefined;
      await new Promise<void>((r) => {
        this.dataWaiter = r;
      });
    }
    if (this.error) throw this.error.reason;
    const item = this.items[this.head]!;
    this.items[this.head++] = undefined as T;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    this.bytes -= this.sizeOf(item);
    if (!this.full()) for (const w of this.roomWaiters.splice(0)) w.resolve();
    return item;
  }

  end(): void {
    this.ended = true;
    this.wakeReader();
  }

  /** Fails both sides: waiting and later take() and room() reject with `reason`. The first failure wins. */
  fail(reason: unknown): void {
    if (this.error) return;
    this.error = { reason };
    this.items = [];
    this.head = 0;
    this.bytes = 0;
    for (const w of this.roomWaiters.splice(0)) w.reject(reason);
    this.wakeReader();
  }

  get failed(): boolean {
    return this.error !== undefined;
  }

  private wakeReader(): void {
    const w = this.dataWaiter;
    this.dataWaiter = undefined;
    w?.();
  }
}
