// A live side-by-side on the boot-sector guest (fixtures/qemu, 32 MiB): QEMU 7.2 multifd with its own
// zstd (level 1, 2 channels) straight to the destination, against multifd `none` through a relay pair
// re-encoding the channels as brotli between the relays. Prints bytes between the two ends and QEMU's
// total time for each. Needs QEMU 7.2 and `npm run build`. `node bench/multifd-live.mjs [--runs N]`
// SPDX-License-Identifier: MIT
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { capabilityList, pollMigrate } from '../fixtures/qemu/lib.mjs';
import { multifdParameters, startGuest, startTee, waitHotLoop } from '../fixtures/multifd/lib.mjs';

const CLI = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');
const runs = Number(process.argv[process.argv.indexOf('--runs') + 1] || 1) || 1;
const CH = 2;

function relay(args) {
  const child = spawn(process.execPath, [CLI, 'relay', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  const listening = new Promise((res, rej) => {
    child.stderr.on('data', (d) => {
      err += d;
      const m = /listening on (\S+)/.exec(err);
      if (m) res(m[1]);
    });
    child.on('exit', () => rej(new Error(`relay exited: ${err}`)));
  });
  return { child, listening, exited: new Promise((r) => child.on('exit', r)) };
}

const bytesOf = (dir) =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.s2d'))
    .reduce((n, f) => n + statSync(join(dir, f)).size, 0);

async function migrate(work, compression, viaRelays) {
  const dstSock = join(work, 'dst.sock');
  const params = multifdParameters({ channels: CH, compression });
  const vms = [];
  const procs = [];
  let measured;
  try {
    const dst = await startGuest(work, 'dst', true);
    vms.push(dst);
    await dst.qmp.execute('migrate-set-capabilities', { capabilities: capabilityList({ multifd: true }) });
    await dst.qmp.execute('migrate-set-parameters', params);
    await dst.qmp.execute('migrate-incoming', { uri: `unix:${dstSock}` });
    let uri;
    if (viaRelays) {
      measured = join(work, 'recB');
      const b = relay(['--listen', 'tcp:127.0.0.1:0', '--connect', `unix:${dstSock}`, '--once', '--record', measured, '--multifd-compression', 'none']);
      procs.push(b);
      const a = relay(['--listen', `unix:${join(work, 'a.sock')}`, '--connect', await b.listening, '--once', '--multifd-compression', 'brotli']);
      procs.push(a);
      uri = await a.listening;
    } else {
      measured = join(work, 'tee');
      const tee = startTee(join(work, 'tee.sock'), dstSock, measured);
      procs.push({ child: { kill: () => tee.close() }, exited: Promise.resolve() });
      uri = `unix:${join(work, 'tee.sock')}`;
    }
    const src = await startGuest(work, 'src', false);
    vms.push(src);
    await waitHotLoop(src);
    await src.qmp.execute('migrate-set-capabilities', { capabilities: capabilityList({ multifd: true }) });
    await src.qmp.execute('migrate-set-parameters', { ...params, 'max-bandwidth': 1 << 30, 'downtime-limit': 300 });
    await src.qmp.execute('migrate', { uri });
    const info = await pollMigrate(src.qmp, (i) => i.status === 'completed', { deadline: Date.now() + 120000, intervalMs: 50, what: 'source', proc: src.proc });
    await pollMigrate(dst.qmp, (i) => i.status === 'completed', { deadline: Date.now() + 60000, intervalMs: 50, what: 'destination', proc: dst.proc });
    await Promise.race([Promise.all(procs.map((p) => p.exited)), new Promise((r) => setTimeout(r, 5000))]);
    return { bytes: bytesOf(measured), totalMs: info['total-time'], normal: info.ram.normal, duplicate: info.ram.duplicate };
  } finally {
    for (const p of procs) p.child.kill();
    for (const vm of vms) await vm.close();
  }
}

for (let r = 0; r < runs; r++) {
  for (const [label, compression, via] of [
    ['QEMU multifd zstd-1 → QEMU', 'zstd', false],
    ['QEMU none → relay brotli-5 pair → QEMU none', 'none', true],
  ]) {
    const work = mkdtempSync(join(tmpdir(), 'migstream-multifd-live-'));
    try {
      const m = await migrate(work, compression, via);
      console.log(
        `${label.padEnd(46)} ${String(m.bytes).padStart(10)} bytes on the wire, total ${m.totalMs} ms, ${m.normal} normal pages, ${m.duplicate} zero`,
      );
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
}
