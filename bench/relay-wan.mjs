// The relay pair as a WAN accelerator: the same running guest migrated over a throttled link
// (a token bucket standing in for a WAN), once QEMU → link → QEMU, once
// QEMU → relay A (--xbzrle --compress lz4) → link → relay B → QEMU. Prints bytes on the link and
// QEMU's total time and downtime for each (with --workers N, a third run with relay A compressing on N
// worker threads). `node bench/relay-wan.mjs [--guest linux|boot] [--mbit N] [--workers N]`
// (default: the Linux guest of fixtures/dumps, 256 MiB, at 100 Mbit/s; needs QEMU 7.2, a kernel and
// busybox-static: fixtures/dumps installs them). Not part of `npm test`: it takes minutes.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { capabilityList, connectQmp, getConfig, migrateAndWait, qemuArgs as bootArgs, sleep, startQemu } from '../fixtures/qemu/lib.mjs';
import { linuxGuestArgs } from '../fixtures/dumps/lib.mjs';
import { spawnRelay } from './relay-process.mjs';

const { values } = parseArgs({
  options: { guest: { type: 'string', default: 'linux' }, mbit: { type: 'string', default: '100' }, workers: { type: 'string', default: '0' } },
});
const workers = Number(values.workers);
const linkBytesPerS = (Number(values.mbit) * 1e6) / 8;
const work = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'migstream-wan-'));
const killers = [];

const guestArgs =
  values.guest === 'linux'
    ? linuxGuestArgs(work)
    : (name, incoming) => bootArgs(getConfig('plain'), { memPath: join(work, `${name}.ram`), qmpPath: join(work, `${name}.qmp`), incoming });

async function vm(name, incoming) {
  const proc = startQemu(guestArgs(name, incoming));
  killers.push(() => proc.kill());
  const qmp = await connectQmp(join(work, `${name}.qmp`), { timeoutMs: 30000 });
  return { proc, qmp };
}

/** A one-way throttled unix-socket link (source → destination at linkBytesPerS; the return path free). */
function link(listenPath, targetPath, stats) {
  const server = createServer((src) => {
    const dst = createConnection(targetPath);
    const queue = [];
    let queued = 0;
    const tick = setInterval(() => {
      let budget = linkBytesPerS / 100;
      while (budget > 0 && queue.length) {
        const head = queue[0];
        const n = Math.min(head.length, budget);
        dst.write(head.subarray(0, n));
        stats.bytes += n;
        budget -= n;
        queued -= n;
        if (n === head.length) queue.shift();
        else queue[0] = head.subarray(n);
      }
      if (queued < 1 << 20) src.resume();
      if (!queue.length && (src.readableEnded || src.destroyed)) dst.end();
    }, 10);
    src.on('data', (d) => {
      queue.push(d);
      queued += d.length;
      if (queued > 1 << 20) src.pause();
    });
    dst.on('data', (d) => src.write(d));
    src.on('error', () => {});
    dst.on('error', () => {});
    // What is queued still crosses the link after the sender closed (the tick ends the destination side).
    dst.on('close', () => {
      clearInterval(tick);
      src.destroy();
    });
  });
  server.listen(listenPath);
  killers.push(() => server.close());
}

const relay = (args) => spawnRelay(args, killers);

async function waitReady(name) {
  if (values.guest !== 'linux') return sleep(2000);
  for (let i = 0; i < 600; i++) {
    const text = existsSync(join(work, `${name}.console`)) ? readFileSync(join(work, `${name}.console`), 'utf8') : '';
    if (text.includes('MIGSTREAM-DUMPS: READY')) return sleep(5000);
    await sleep(500);
  }
  throw new Error('guest not ready');
}

async function run(label, viaRelays, relayWorkers = 0) {
  const stats = { bytes: 0 };
  const dst = await vm(`${label}-dst`, true);
  await dst.qmp.execute('migrate-incoming', { uri: `unix:${join(work, `${label}-dst.sock`)}` });
  let target = join(work, `${label}-dst.sock`);
  let relays = [];
  if (viaRelays) {
    const b = relay(['--listen', `unix:${join(work, `${label}-b.sock`)}`, '--connect', `unix:${target}`]);
    await b.ready;
    link(join(work, `${label}-link.sock`), join(work, `${label}-b.sock`), stats);
    const a = relay([
      '--listen',
      `unix:${join(work, `${label}-a.sock`)}`,
      '--connect',
      `unix:${join(work, `${label}-link.sock`)}`,
      '--xbzrle',
      '--compress',
      'lz4',
      ...(relayWorkers ? ['--workers', String(relayWorkers)] : []),
    ]);
    await a.ready;
    relays = [a, b];
    target = join(work, `${label}-a.sock`);
  } else {
    link(join(work, `${label}-link.sock`), target, stats);
    target = join(work, `${label}-link.sock`);
  }
  const src = await vm(`${label}-src`, false);
  await waitReady(`${label}-src`);
  await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 4 << 30, 'downtime-limit': 2000 });
  const { info, dinfo, wallMs } = await migrateAndWait(src, dst, `unix:${target}`, { label, intervalMs: 200 });
  const relayOut = await Promise.all(relays.map((r) => r.done));
  await src.proc.kill();
  await dst.proc.kill();
  return {
    label,
    status: `${info.status}/${dinfo.status}`,
    wallMs,
    totalMs: info['total-time'],
    downtimeMs: info.downtime,
    qemuBytes: info.ram.transferred,
    linkBytes: stats.bytes,
    rounds: info.ram['dirty-sync-count'],
    relays: relayOut.map((r) => JSON.parse(r.out || '{}')),
  };
}

try {
  const rows = [await run('direct', false), await run('relays', true)];
  if (workers > 0) rows.push(await run(`relays --workers ${workers}`, true, workers));
  console.log(`guest ${values.guest}, link ${values.mbit} Mbit/s\n`);
  console.log('| path | source/destination | bytes on the link | until the destination completed | source total-time | source downtime | dirty syncs |');
  console.log('|---|---|---:|---:|---:|---:|---:|');
  for (const r of rows)
    console.log(
      `| ${r.label} | ${r.status} | ${r.linkBytes.toLocaleString('en')} | ${(r.wallMs / 1000).toFixed(1)} s | ${(r.totalMs / 1000).toFixed(1)} s | ${r.downtimeMs} ms | ${r.rounds} |`,
    );
  for (const r of rows.slice(1)) {
    const a = r.relays[0]?.connections?.[0];
    if (a)
      console.log(
        `\n${r.label}: relay A ${a.s2dIn.toLocaleString('en')} bytes from QEMU → ${a.s2dOut.toLocaleString('en')} on the link; added latency per chunk median ${a.addedLatency.medianMs} ms, p99 ${a.addedLatency.p99Ms} ms`,
      );
  }
} finally {
  for (const k of killers.reverse()) await k();
  rmSync(work, { recursive: true, force: true });
}
