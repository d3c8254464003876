// The line-rate bench's Linux guest: fixtures/dumps' kernel + busybox initramfs (its /init does the
// dump series' memory work) booted with a larger RAM (default 512 MiB) under QEMU 7.2 TCG.
//
// `ensureLinuxStream()` captures one real precopy stream of it (migrate to `exec:cat > FILE`,
// unlimited bandwidth) and caches it under .cache/line-rate/ keyed by the recipe (the dumps'
// recipe hash + the RAM size): a later run reuses it.
// `bootGuest()` / `startDestination()` are the QEMUs of the live-migration row.
//
// SPDX-License-Identifier: MIT

import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildInitramfs, ensurePrerequisites, qemuArgs, recipeHash, REPO_ROOT } from '../../fixtures/dumps/lib.mjs';
import { connectQmp, pollMigrate, quitQemu, sleep, startQemu } from '../../fixtures/qemu/lib.mjs';

export const CACHE = join(REPO_ROOT, '.cache', 'line-rate');
const READY_MARK = 'MIGSTREAM-DUMPS: READY';

/** A booted guest (or a destination): its QEMU, QMP and files. */
export async function bootGuest({ ramMiB, log = () => {}, incoming = false, name = 'src', dir }) {
  const pre = ensurePrerequisites(log);
  mkdirSync(CACHE, { recursive: true });
  const work = dir ?? mkdtempSync(join(tmpdir(), 'migstream-lr-'));
  const initrd = join(CACHE, `initramfs-${recipeHash().slice(0, 12)}.cpio`); // rebuilt when the dump guest's /init changes
  if (!existsSync(initrd)) writeFileSync(initrd, buildInitramfs(pre.busybox.path));
  const memPath = join(work, `${name}.ram`);
  const consolePath = join(work, `${name}.console`);
  const qmpPath = join(work, `${name}.qmp`);
  const args = qemuArgs({ memPath, kernel: pre.kernel.path, initrd, console: consolePath, qmp: qmpPath, ramMiB });
  if (incoming) args.push('-incoming', 'defer', '-S'); // paused after the load: its RAM stays what arrived
  const proc = startQemu(args);
  let qmp;
  try {
    qmp = await connectQmp(qmpPath, { timeoutMs: 30000 });
    if (!incoming) {
      const t0 = Date.now();
      for (;;) {
        const text = existsSync(consolePath) ? readFileSync(consolePath, 'latin1') : '';
        if (text.includes(READY_MARK)) break;
        if (proc.child.exitCode !== null) throw new Error(`QEMU exited: ${proc.stderr()}\n${text.slice(-2000)}`);
        if (/Kernel panic/.test(text) || Date.now() - t0 > 600000) throw new Error(`guest not ready:\n${text.slice(-2000)}`);
        await sleep(250);
      }
      log(`guest ready after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
  } catch (e) {
    await quitQemu(proc, qmp);
    throw e;
  }
  return {
    proc,
    qmp,
    work,
    memPath,
    async close() {
      await quitQemu(proc, qmp, 2000);
    },
  };
}

/** Waits for a migration on `qmp` to complete; returns query-migrate. */
export function waitCompleted(vm, what, ms = 600000) {
  return pollMigrate(vm.qmp, (i) => i.status === 'completed', { deadline: Date.now() + ms, intervalMs: 20, what, proc: vm.proc });
}

/**
 * The cached real QEMU 7.2 stream of the Linux guest (`ramMiB` RAM), captured once.
 * @returns {Promise<{path: string, bytes: number, ramMiB: number}>}
 */
export async function ensureLinuxStream({ ramMiB = 512, log = () => {} } = {}) {
  mkdirSync(CACHE, { recursive: true });
  const key = `linux-${ramMiB}-${recipeHash().slice(0, 12)}`;
  const path = join(CACHE, `${key}.stream`);
  const meta = join(CACHE, `${key}.json`);
  if (existsSync(path) && existsSync(meta) && JSON.parse(readFileSync(meta, 'utf8')).bytes === statSync(path).size) {
    return { path, bytes: statSync(path).size, ramMiB };
  }
  log(`capturing a real QEMU stream of a ${ramMiB} MiB Linux guest (once; cached in ${CACHE})`);
  const vm = await bootGuest({ ramMiB, log });
  const tmp = `${path}.tmp`;
  try {
    await sleep(2000); // let the guest's writers run a little
    await vm.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 1e12 });
    await vm.qmp.execute('migrate', { uri: `exec:cat > ${tmp}` });
    const info = await waitCompleted(vm, 'stream capture');
    const bytes = statSync(tmp).size;
    renameSync(tmp, path);
    writeFileSync(meta, `${JSON.stringify({ ramMiB, bytes, capturedAt: new Date().toISOString(), ram: info.ram }, null, 2)}\n`);
    log(`captured ${bytes} bytes (${info.ram?.['duplicate']} zero pages, ${info.ram?.normal} normal)`);
    return { path, bytes, ramMiB };
  } finally {
    await vm.close();
    rmSync(vm.work, { recursive: true, force: true });
    rmSync(tmp, { force: true });
  }
}
