/**
 * A one-shot wake-up for a single async waiter: `wait()` parks the waiter
 * until the next `notify()`. Pool drivers use it to sleep until a batch
 * completes or the sink drains, instead of polling.
 */
export class Wakeup {
  private wake: (() => void) | undefined;

  wait(): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
    });
  }

  notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }
}
