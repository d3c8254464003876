import type { PagePool } from './pool.js';

let factory: ((workers: number) => PagePool) | undefined;

/**
 * Where `workers: N` gets its pool. The portable core knows no threads:
 * migstream/node (and the CLI) plug in the worker_threads pool here.
 */
export function setPoolFactory(make: ((workers: number) => PagePool) | undefined): void {
  factory = make;
}

export function createPool(workers: number): PagePool {
  if (!factory) throw new TypeError('`workers` needs a worker pool: import migstream/node (it plugs in worker_threads), or pass `pool`');
  return factory(workers);
}
