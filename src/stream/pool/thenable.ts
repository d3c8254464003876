/**
 * Whether a sink's return value is something to wait for. Sinks are typed
 * `(chunk) => void | Promise<void>`, and TypeScript accepts
 * `(c) => parts.push(c)` there, which returns a number: only a thenable is awaited.
 */
export function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof (v as { then?: unknown } | null | undefined)?.then === 'function';
}
