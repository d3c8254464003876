import { move, transferableSymbol, valueSymbol } from 'piscina';
import { runTask, transferables, type PoolTask } from './tasks.js';

/** Piscina's worker entry: runs one batch and hands its result buffers back without copying. */
export default function handle(task: PoolTask): unknown {
  const result = runTask(task);
  const list = transferables(result);
  return move({
    get [transferableSymbol]() {
      return list;
    },
    get [valueSymbol]() {
      return result;
    },
  } as unknown as ArrayBuffer);
}
