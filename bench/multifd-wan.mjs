// Multifd over a WAN link, as an operator sees it: the same Linux guest (fixtures/dumps, 256 MiB,
// TCG) migrated with 2 multifd channels over one shaped link shared by all connections, once with
// QEMU 7.2's own multifd zstd-1 / zlib-1 end to end, once QEMU none → relay A (channels re-encoded
// on its worker pool) → link → relay B (back to none) → QEMU none. Prints bytes on the link, wall time
// from `migrate` until the destination completed, and pages per second, side by side per link rate.
// `node bench/multifd-wan.mjs [--mbit 100,1000,0] [--paths zstd,zlib,relay-zstdlong-3,relay-brotli-5]
// [--workers 2] [--json FILE] [--prof DIR] [--record DIR]` (0 = unlimited; needs QEMU 7.2, a kernel and
// busybox-static). Takes minutes. A relay path is relay-KIND-LEVEL[-wN] (KIND zstd, zstdlong = zstd
// --multifd-long, dedup = zstd-dedup, deduplong, zlib, brotli; -wN: N workers per relay for this path, -w0
// inline, else --workers).
// CPU s: each process's user+system seconds from `migrate` to the end (/proc), the bench's own (the link) last.
// --prof DIR: relays run under node --cpu-prof (DIR/<row>-relay-a|b/); --record DIR: relay A records its
// connections (the source QEMU's channels) into DIR/<row>.
// SPDX-License-Identifier: MIT
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { capabilityList, connectQmp, migrateAndWait, sleep, startQemu } from '../fixtures/qemu/lib.mjs';
import { linuxGuestArgs } from '../fixtures/dumps/lib.mjs';
import { spawnRelay } from './relay-process.mjs';

const { values } = parseArgs({
  options: {
    mbit: { type: 'string', default: '100,1000,0' },
    paths: { type: 'string', default: 'zstd,zlib,relay-zstdlong-3,relay-brotli-5' },
    workers: { type: 'string', default: '2' },
    channels: { type: 'string', default: '2' },
    json: { type: 'string' },
    prof: { type: 'string' },
    record: { type: 'string' },
  },
});
const CH = Number(values.channels);
const work = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'migstream-mfd-wan-'));
const killers = [];
const guestArgs = linuxGuestArgs(work);

async function vm(name, incoming) {
  const proc = startQemu(guestArgs(name, incoming));
  killers.push(() => proc.kill());
  const qmp = await connectQmp(join(work, `${name}.qmp`), { timeoutMs: 30000 });
  return { proc, qmp, name };
}

async function waitReady(name) {
  for (let i = 0; i < 1200; i++) {
    const p = join(work, `${name}.console`);
    if (existsSync(p) && readFileSync(p, 'utf8').includes('MIGSTREAM-DUMPS: READY')) return sleep(3000);
    await sleep(500);
  }
  throw new Error('guest not ready');
}

/**
 * One link shared by every connection of a migration (source → destination at `bytesPerS`, token
 * bucket refilled every 10 ms, connections served round robin; the return path free). 0: unshaped.
 */
function link(listenPath, targetPath, bytesPerS, stats) {
  const conns = [];
  let rr = 0;
  const tick =
    bytesPerS > 0 &&
    setInterval(() => {
      let budget = bytesPerS / 100;
      for (let idle = 0; budget > 0 && idle < conns.length; ) {
        const c = conns[rr++ % conns.length];
        if (!c.queue.length) {
          idle++;
          continue;
        }
        idle = 0;
        const head = c.queue[0];
        const n = Math.min(head.length, budget, 16384);
        c.dst.write(head.subarray(0, n));
        stats.bytes += n;
        budget -= n;
        c.queued -= n;
        if (n === head.length) c.queue.shift();
        else c.queue[0] = head.subarray(n);
      }
      for (const c of conns) {
        if (c.queued < 1 << 20) c.src.resume();
        if (!c.queue.length && c.srcEnded && !c.closed) {
          c.closed = true;
          c.dst.end();
        }
      }
    }, 10);
  const server = createServer({ allowHalfOpen: true }, (src) => {
    const dst = createConnection({ path: targetPath, allowHalfOpen: true });
    const c = { src, dst, queue: [], queued: 0, srcEnded: false, closed: false };
    conns.push(c);
    src.on('data', (d) => {
      if (!tick) {
        stats.bytes += d.length;
        if (!dst.write(d)) src.pause();
        return;
      }
      c.queue.push(d);
      c.queued += d.length;
      if (c.queued > 1 << 20) src.pause();
    });
    dst.on('drain', () => src.resume());
    src.on('end', () => {
      c.srcEnded = true;
      if (!tick) dst.end();
    });
    dst.on('data', (d) => src.write(d));
    dst.on('end', () => src.end());
    src.on('error', () => {});
    dst.on('error', () => {});
    dst.on('close', () => src.destroy());
  });
  server.listen(listenPath);
  killers.push(() => {
    if (tick) clearInterval(tick);
    server.close();
  });
}

/** utime+stime of a process in seconds (Linux /proc), undefined once it is gone. */
function cpuSeconds(pid) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const after = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return (Number(after[11]) + Number(after[12])) / 100; // fields 14, 15 in clock ticks (USER_HZ 100)
  } catch {
    return undefined;
  }
}

/** CPU seconds each named process spent from start() to stop() (polled: a relay may exit first). */
function cpuMeter(procs) {
  const first = {};
  const last = {};
  const sample = () => {
    for (const [name, pid] of Object.entries(procs)) {
      const s = name === 'bench' ? process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6 : cpuSeconds(pid);
      if (s === undefined) continue;
      first[name] ??= s;
      last[name] = s;
    }
  };
  sample();
  const t = setInterval(sample, 100);
  return () => {
    sample();
    clearInterval(t);
    return Object.fromEntries(Object.keys(procs).map((k) => [k, Number(((last[k] ?? 0) - (first[k] ?? 0)).toFixed(2))]));
  };
}

function relay(args, name) {
  return spawnRelay(args, killers, values.prof ? ['--cpu-prof', '--cpu-prof-dir', join(values.prof, name)] : []);
}

const params = (compression) => ({
  'multifd-channels': CH,
  'multifd-compression': compression,
  ...(compression === 'zlib' ? { 'multifd-zlib-level': 1 } : {}),
  ...(compression === 'zstd' ? { 'multifd-zstd-level': 1 } : {}),
});

async function run(path, mbit) {
  const label = `${path}-${mbit}`;
  const stats = { bytes: 0 };
  const relayed = path.startsWith('relay-');
  const qemuCompression = relayed ? 'none' : path;
  const dst = await vm(`${label}-dst`, true);
  await dst.qmp.execute('migrate-set-capabilities', { capabilities: capabilityList({ multifd: true }) });
  await dst.qmp.execute('migrate-set-parameters', params(qemuCompression));
  const dstSock = join(work, `${label}-dst.sock`);
  await dst.qmp.execute('migrate-incoming', { uri: `unix:${dstSock}` });
  const linkSock = join(work, `${label}-link.sock`);
  let target = linkSock;
  const relays = [];
  if (relayed) {
    const [, kind, level, w] = /^relay-(\w+)-(\d+)(?:-w(\d+))?$/.exec(path);
    const between = BETWEEN[kind] ?? [kind];
    const workers = w ?? values.workers;
    const pool = Number(workers) ? ['--workers', workers] : [];
    const b = relay(
      ['--listen', `unix:${join(work, `${label}-b.sock`)}`, '--connect', `unix:${dstSock}`, '--multifd-compression', 'none', ...pool],
      `${label}-relay-b`,
    );
    await b.ready;
    link(linkSock, join(work, `${label}-b.sock`), (mbit * 1e6) / 8, stats);
    const a = relay(
      [
        '--listen',
        `unix:${join(work, `${label}-a.sock`)}`,
        '--connect',
        `unix:${linkSock}`,
        '--multifd-compression',
        ...between,
        '--multifd-level',
        level,
        ...pool,
        ...(values.record ? ['--record', join(values.record, label)] : []),
      ],
      `${label}-relay-a`,
    );
    await a.ready;
    relays.push(a, b);
    target = join(work, `${label}-a.sock`);
  } else link(linkSock, dstSock, (mbit * 1e6) / 8, stats);
  const src = await vm(`${label}-src`, false);
  await waitReady(`${label}-src`);
  await src.qmp.execute('migrate-set-capabilities', { capabilities: capabilityList({ multifd: true }) });
  await src.qmp.execute('migrate-set-parameters', { ...params(qemuCompression), 'max-bandwidth': 4 << 30, 'downtime-limit': 2000 });
  const load = loadavg()[0];
  const stopMeter = cpuMeter({
    src: src.proc.child.pid,
    dst: dst.proc.child.pid,
    ...(relays.length ? { relayA: relays[0].pid, relayB: relays[1].pid } : {}),
    bench: process.pid,
  });
  const { info, dinfo, wallMs } = await migrateAndWait(src, dst, `unix:${target}`, { label });
  await Promise.race([Promise.all(relays.map((r) => r.done)), sleep(10000)]);
  const cpu = stopMeter();
  await src.proc.kill();
  await dst.proc.kill();
  return {
    path,
    mbit,
    status: `${info.status}/${dinfo.status}`,
    linkBytes: stats.bytes,
    wallMs,
    totalMs: info['total-time'],
    downtimeMs: info.downtime,
    normal: info.ram.normal,
    duplicate: info.ram.duplicate,
    syncs: info.ram['dirty-sync-count'],
    load,
    cpu,
  };
}

/** Relay path kinds that are not a --multifd-compression value as they are. */
const BETWEEN = { zstdlong: ['zstd', '--multifd-long'], dedup: ['zstd-dedup'], deduplong: ['zstd-dedup', '--multifd-long'] };
const NAMES = { zstd: 'QEMU multifd zstd-1', zlib: 'QEMU multifd zlib-1' };
const name = (p) => {
  if (NAMES[p]) return NAMES[p];
  const [, kind, level, w] = /^relay-(\w+)-(\d+)(?:-w(\d+))?$/.exec(p);
  const workers = Number(w ?? values.workers);
  return `QEMU none → relays (${(BETWEEN[kind] ?? [kind]).join(' ')} -${level} between, ${workers ? `${workers} workers each` : 'inline'}) → QEMU none`;
};
const rows = [];
try {
  for (const mbit of values.mbit.split(',').map(Number))
    for (const path of values.paths.split(',')) {
      const r = await run(path, mbit);
      rows.push(r);
      console.error(JSON.stringify(r));
    }
} finally {
  for (const k of killers.reverse()) await k();
  rmSync(work, { recursive: true, force: true });
}
console.log(`Linux guest 256 MiB (TCG), ${CH} multifd channels\n`);
console.log(
  '| link | path | bytes on the link | vs QEMU zstd-1 | wall time | pages MiB/s | downtime | dirty syncs | CPU s (src/dst/relay A/relay B/link) | load avg |',
);
console.log('|---|---|---:|---:|---:|---:|---:|---:|---|---:|');
for (const r of rows) {
  const base = rows.find((x) => x.mbit === r.mbit && x.path === 'zstd');
  const pct = base ? `${((100 * r.linkBytes) / base.linkBytes).toFixed(1)}%` : '';
  console.log(
    `| ${r.mbit ? `${r.mbit} Mbit/s` : 'unlimited'} | ${name(r.path)}${r.status === 'completed/completed' ? '' : ` (${r.status})`} | ${r.linkBytes.toLocaleString('en')} | ${pct} | ${(r.wallMs / 1000).toFixed(1)} s | ${((r.normal * 4096) / 2 ** 20 / (r.wallMs / 1000)).toFixed(1)} | ${r.downtimeMs} ms | ${r.syncs} | ${[r.cpu.src, r.cpu.dst, r.cpu.relayA ?? '–', r.cpu.relayB ?? '–', r.cpu.bench].join(' / ')} | ${r.load.toFixed(1)} |`,
  );
}
if (values.json) writeFileSync(values.json, `${JSON.stringify(rows, null, 2)}\n`);
