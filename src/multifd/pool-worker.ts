import '../node/install.js'; // node:zlib and libzstd channel codecs
import { parentPort } from 'node:worker_threads';
import { runRecodeTask, transferList, type RecodeTask } from './pool-tasks.js';

/**
 * Worker entry for multifd channels on a ThreadPool (src/stream/pool/thread-pool.ts speaks the
 * same messages as the page worker): {id, task} in, {id, result} out with the output transferred.
 * Channels' recoders stay here between tasks, so a channel must always come back to this worker.
 */
parentPort?.on('message', (msg: { id: number; task: RecodeTask } | { stop: true }) => {
  if (msg && 'stop' in msg) {
    parentPort!.close();
    return;
  }
  if (!msg || typeof msg.id !== 'number') return;
  let result;
  try {
    result = runRecodeTask(msg.task);
  } catch (e) {
    parentPort!.postMessage({ id: msg.id, error: (e as Error)?.message ?? String(e) });
    return;
  }
  parentPort!.postMessage({ id: msg.id, result }, transferList(result.out));
});
