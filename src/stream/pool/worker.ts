import '../../node/install.js'; // workers decode with Node's codecs
import { parentPort } from 'node:worker_threads';
import { runTask, transferables, type PoolTask } from './tasks.js';

/**
 * Worker entry of migstream's page pool: {id, task} in, {id, result} or
 * {id, error} out, result buffers transferred.
 */
parentPort?.on('message', (msg: { id: number; task: PoolTask } | { stop: true }) => {
  if (msg && 'stop' in msg) {
    parentPort!.close(); // the pool is closing: end after this batch, not in the middle of one
    return;
  }
  if (!msg || typeof msg.id !== 'number') return;
  let result;
  try {
    result = runTask(msg.task);
  } catch (e) {
    parentPort!.postMessage({ id: msg.id, error: (e as Error)?.message ?? String(e) });
    return;
  }
  parentPort!.postMessage({ id: msg.id, result }, transferables(result));
});
