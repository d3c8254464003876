/**
 * Drops the consumed head of an array used as a FIFO (entries before `head`):
 * all of it once the queue is empty, in one splice once the head passes 4096,
 * so popping stays O(1) without the array growing forever. Returns the new head.
 */
export function compactQueue<T>(q: T[], head: number): number {
  if (head === q.length) {
    q.length = 0;
    return 0;
  }
  if (head > 4096) {
    q.splice(0, head);
    return 0;
  }
  return head;
}
