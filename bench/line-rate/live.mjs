// The live-migration row of bench/line-rate.mjs: one running Linux guest (bench/line-rate/guest.mjs)
// migrated, plain, at unlimited bandwidth, alternately
//   direct:  source QEMU → unix socket → destination QEMU
//   relayed: source QEMU → `migstream relay` → `migstream relay` → destination QEMU
// (both relays started, and listening, before the migration: node's start does not count).
// The wall time runs from `migrate` until the destination has loaded everything (its
// query-migrate says completed). After each relayed run the destination's RAM is compared with
// the (stopped) source's, byte for byte. The source is continued between runs.
//
//   node bench/line-rate/live.mjs [--ram-mib 512] [--reps 2]
//
// SPDX-License-Identifier: MIT

import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { sleep } from '../../fixtures/qemu/lib.mjs';
import { bootGuest } from './guest.mjs';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'cli', 'main.js');

/** `migstream relay --once` as a child; resolves once it listens. `nodeArgs`: e.g. --cpu-prof to profile the relays. */
function startRelay(listen, connect, nodeArgs = []) {
  const child = spawn(process.execPath, [...nodeArgs, CLI, 'relay', '--listen', listen, '--connect', connect, '--once'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  const exited = new Promise((res) => child.on('exit', (code) => res(code)));
  const listening = new Promise((res, rej) => {
    child.stderr.on('data', (d) => {
      err += d;
      if (/listening on/.test(err)) res();
    });
    exited.then((code) => rej(new Error(`relay exited (${code}) before listening: ${err}`)));
  });
  return {
    listening,
    exited,
    stderr: () => err,
    kill: () => child.exitCode === null && child.kill('SIGKILL'),
  };
}

async function waitStatus(vm, what, ms = 300000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const info = await vm.qmp.execute('query-migrate');
    if (info.status === 'completed') return info;
    if (info.status === 'failed' || info.status === 'cancelled') throw new Error(`${what}: ${info.status} ${info['error-desc'] ?? ''} ${vm.proc.stderr()}`);
    if (Date.now() > deadline) throw new Error(`${what}: timed out (${info.status})`);
    await sleep(5);
  }
}

/** One migration of the running source into a fresh destination, direct or through two relays. */
async function migrateOnce(src, { ramMiB, relayed, n, log, check, relayNodeArgs }) {
  const dst = await bootGuest({ ramMiB, incoming: true, name: `dst${n}`, dir: src.work });
  const relays = [];
  try {
    const dstSock = join(src.work, `dst${n}.sock`);
    await dst.qmp.execute('migrate-incoming', { uri: `unix:${dstSock}` });
    let uri = `unix:${dstSock}`;
    if (relayed) {
      const r2 = join(src.work, `r2-${n}.sock`);
      const r1 = join(src.work, `r1-${n}.sock`);
      relays.push(startRelay(`unix:${r2}`, `unix:${dstSock}`, relayNodeArgs), startRelay(`unix:${r1}`, `unix:${r2}`, relayNodeArgs));
      await Promise.all(relays.map((r) => r.listening));
      uri = `unix:${r1}`;
    }
    const t0 = performance.now();
    await src.qmp.execute('migrate', { uri });
    const [srcInfo] = await Promise.all([waitStatus(src, 'source'), waitStatus(dst, 'destination')]);
    const wallMs = performance.now() - t0;
    const bytes = srcInfo.ram?.transferred ?? 0;
    let ramExact;
    if (check) {
      ramExact = Buffer.compare(readFileSync(src.memPath), readFileSync(dst.memPath)) === 0;
      if (!ramExact) throw new Error('the destination RAM differs from the source after the relayed migration');
    }
    for (const r of relays) {
      const code = await Promise.race([r.exited, sleep(10000).then(() => 'timeout')]);
      if (code !== 0) throw new Error(`relay exit ${code}: ${r.stderr()}`);
    }
    log(`${relayed ? 'relayed' : 'direct '} migration ${n}: ${wallMs.toFixed(0)} ms wall, QEMU total-time ${srcInfo['total-time']} ms, ${bytes} bytes`);
    return { wallMs, bytes, ramExact };
  } finally {
    for (const r of relays) r.kill();
    await dst.close();
    rmSync(dst.memPath, { force: true });
    await src.qmp.execute('cont').catch(() => {});
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/**
 * Median wall times of `reps` direct and `reps` relayed migrations, alternated (direct, relayed, direct, ...).
 * The median, not the best: QEMU's own direct migrations of this guest vary 1.5–3.3 s between runs, and a
 * lucky direct run against an unlucky relayed one (or the reverse) said more about the guest than the relays.
 */
export async function liveMigrationRow({ ramMiB = 512, reps = 5, log = () => {}, relayNodeArgs = [] } = {}) {
  const src = await bootGuest({ ramMiB, log, name: 'src' });
  try {
    await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 1e12, 'downtime-limit': 300 });
    const direct = [];
    const relayed = [];
    let bytes = 0;
    let ramExact = false;
    let n = 0;
    for (let r = 0; r < reps; r++) {
      direct.push((await migrateOnce(src, { ramMiB, relayed: false, n: n++, log })).wallMs);
      const rel = await migrateOnce(src, { ramMiB, relayed: true, n: n++, log, check: r === 0, relayNodeArgs });
      relayed.push(rel.wallMs);
      bytes = rel.bytes;
      if (r === 0) ramExact = rel.ramExact;
    }
    return { directMs: median(direct), relayedMs: median(relayed), direct, relayed, bytes, ramExact };
  } finally {
    await src.close();
    rmSync(src.work, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { parseArgs } = await import('node:util');
  const { loadavg } = await import('node:os');
  const { values } = parseArgs({
    options: { 'ram-mib': { type: 'string', default: '512' }, reps: { type: 'string', default: '5' }, 'relay-cpu-prof': { type: 'string' } },
  });
  const prof = values['relay-cpu-prof'];
  const r = await liveMigrationRow({
    ramMiB: Number(values['ram-mib']),
    reps: Number(values.reps),
    log: (m) => process.stderr.write(`[live] ${m}\n`),
    relayNodeArgs: prof ? ['--cpu-prof', '--cpu-prof-dir', prof] : [],
  });
  const ms = (xs) => xs.map((v) => v.toFixed(0)).join(', ');
  console.log(
    `median of ${r.direct.length}: direct ${r.directMs.toFixed(0)} ms (${ms(r.direct)}), through two migstream relays ${r.relayedMs.toFixed(0)} ms (${ms(r.relayed)}): ${(r.relayedMs / r.directMs).toFixed(2)}× (target ≤ 1.25×); RAM byte-exact: ${r.ramExact}; load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
}
