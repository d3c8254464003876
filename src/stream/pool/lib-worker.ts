import { runTask, type PoolTask } from './tasks.js';

/** The same tasks as a default export, the shape piscina and tinypool call (bench/pool.bench.mjs compares them). */
export default function handle(task: PoolTask) {
  return runTask(task);
}
