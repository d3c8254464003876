#!/usr/bin/env node
// The planner against real QEMU 7.2: boots a 128 MiB Linux guest with a heavy dirtier
// (bench/plan-guest-init), captures a dump series of it at a known interval, predicts pre-copy
// for every (bandwidth, setting) with `migstream plan`'s library, then migrates the same running
// guest with QEMU to an `exec:cat > /dev/null` sink for each of them (one at a time, capped) and
// prints prediction and QEMU's query-migrate side by side.
//
//   npm run build && nice -n 10 node bench/plan-vs-qemu.mjs [--cap SECONDS (90)] [--dumps N (13)] [--interval S (0.5)]
//                                                          [--bandwidths 3,8,32,128] [--json FILE] [--priority NICE] [--repeats N (3)]
//                                                          [--capture-bandwidth MIBPS (1; 0: no migration during the capture)] [--settings auto-converge,…]
//                                                          [--throttle-response K (2)]
//
// --priority (default -20 as root, else 0) renices every QEMU thread: the guest's speed under TCG
// follows the host's load, and a guest that runs faster or slower while it migrates than while its
// dumps were taken is not the guest the planner was shown (docs/planner.md, "Where it misses").
//
// Needs qemu-system-x86 7.2, busybox-static and a Debian kernel (as fixtures/dumps/capture.mjs).
// Not run in CI: it takes 15 to 20 minutes on 2 busy cores. Results: docs/planner.md.
//
// SPDX-License-Identifier: MIT

import { copyFileSync, createReadStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, setPriority, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildCpio, ensurePrerequisites, qemuArgs } from '../fixtures/dumps/lib.mjs';
import { connectQmp, quitQemu, sleep, startQemu, QEMU_BIN } from '../fixtures/qemu/lib.mjs';
import { decodeEvents } from '../dist/index.js';
import { FileDumpSource, Trace, dirtyRateReport, hostShare, measureCodecRate, parseSetting, simulate } from '../dist/plan/index.js';
import { RamImage } from '../dist/sinks.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const WORK = join(ROOT, '.cache', 'plan-vs-qemu');
const MiB = 1 << 20;
const RAM_MIB = 128;
const GUEST_VCPUS = 1; // fixtures/dumps' qemuArgs: -smp 1

const { values } = parseArgs({
  options: {
    cap: { type: 'string', default: '90' },
    dumps: { type: 'string', default: '13' },
    interval: { type: 'string', default: '0.5' },
    bandwidths: { type: 'string', default: '3,8,32,128' },
    json: { type: 'string' },
    priority: { type: 'string', default: process.getuid?.() === 0 ? '-20' : '0' },
    repeats: { type: 'string', default: '3' },
    'capture-bandwidth': { type: 'string', default: '1' },
    settings: { type: 'string' },
    'throttle-response': { type: 'string', default: '2' },
  },
});
const PRIORITY = Number(values.priority);
const CAP = Number(values.cap);
const DUMPS = Number(values.dumps);
const INTERVAL = Number(values.interval);
const BANDWIDTHS = values.bandwidths.split(',').map(Number);
// QEMU's own bytes vary from run to run of the same case (compress at 32 MiB/s: 90 and 118 MiB in two
// runs): each case that completes runs REPEATS times and the prediction is compared with the median run.
const REPEATS = Math.max(1, Number(values.repeats));
// How this guest's dirtier answers QEMU's throttle under TCG: (1 - p)^K of its speed, K = 2 measured per
// throttle level in a separate run (docs/planner.md, "The throttle under TCG"); QEMU's design intent is K = 1.
const THROTTLE_RESPONSE = Number(values['throttle-response']);
/** MiB/s of the migration running during the capture (0: capture an unmigrated guest). */
const CAPTURE_BANDWIDTH = Number(values['capture-bandwidth']);
const DOWNTIME_MS = 300; // QEMU's default downtime-limit

/** What is compared: QEMU capabilities/parameters and the planner setting that models them. */
const SETTINGS = [
  { name: 'plain', caps: {}, params: {}, plan: 'plain', autoConverge: false },
  { name: 'plain + auto-converge', caps: { 'auto-converge': true }, params: {}, plan: 'plain', autoConverge: true },
  { name: 'xbzrle 32 MiB', caps: { xbzrle: true }, params: { 'xbzrle-cache-size': 32 * MiB }, plan: 'xbzrle:32M:qemu', autoConverge: false },
  {
    name: 'compress zlib 1, 2 threads',
    caps: { compress: true },
    params: { 'compress-level': 1, 'compress-threads': 2 },
    plan: 'zlib:1/w2',
    autoConverge: false,
  },
];
const ALL_CAPS = ['auto-converge', 'xbzrle', 'compress'];
/** --settings plain,auto-converge,xbzrle,compress: a subset (each name matches the settings whose name contains it). */
const CHOSEN = values.settings ? SETTINGS.filter((s) => values.settings.split(',').some((n) => s.name.includes(n))) : SETTINGS;

const t0 = Date.now();
const log = (m) => process.stderr.write(`[plan-vs-qemu ${((Date.now() - t0) / 1000).toFixed(0).padStart(4)}s] ${m}\n`);

async function main() {
  const pre = ensurePrerequisites(log);
  rmSync(WORK, { recursive: true, force: true });
  mkdirSync(WORK, { recursive: true });
  const sockDir = mkdtempSync(join(tmpdir(), 'migstream-plan-'));
  const memPath = join(WORK, 'pc.ram');
  const initrd = join(WORK, 'initramfs.cpio');
  const consolePath = join(WORK, 'console.log');
  const qmpPath = join(sockDir, 'qmp.sock');
  const entries = [];
  for (const d of ['bin', 'sbin', 'usr', 'usr/bin', 'usr/sbin', 'dev', 'proc', 'sys', 'mnt', 'tmp', 'root', 'etc']) entries.push({ path: d, type: 'dir' });
  entries.push({ path: 'dev/console', type: 'char', major: 5, minor: 1 });
  entries.push({ path: 'bin/busybox', type: 'file', mode: 0o755, data: readFileSync(pre.busybox.path) });
  entries.push({ path: 'bin/sh', type: 'symlink', target: 'busybox' });
  entries.push({ path: 'init', type: 'file', mode: 0o755, data: readFileSync(join(ROOT, 'bench', 'plan-guest-init')) });
  writeFileSync(initrd, buildCpio(entries));

  const args = qemuArgs({ memPath, kernel: pre.kernel.path, initrd, console: consolePath, qmp: qmpPath, ramMiB: RAM_MIB });
  const proc = startQemu(args);
  let qmp;
  const report = {
    date: new Date().toISOString(),
    qemu: pre.qemu.banner,
    kernel: pre.kernel.path,
    command: [QEMU_BIN, ...args].join(' '),
    cap: CAP,
    priority: PRIORITY,
    interval: INTERVAL,
    dumps: DUMPS,
    captureBandwidthMiBps: CAPTURE_BANDWIDTH,
    throttleResponse: THROTTLE_RESPONSE,
    repeats: REPEATS,
    runs: [],
  };
  try {
    qmp = await connectQmp(qmpPath, { timeoutMs: 30000 });
    log(`booting a ${RAM_MIB} MiB guest under TCG`);
    const tBoot = Date.now();
    for (;;) {
      const text = existsSync(consolePath) ? readFileSync(consolePath, 'latin1') : '';
      if (text.includes('MIGSTREAM-PLAN: READY')) break;
      if (proc.child.exitCode !== null) throw new Error(`QEMU exited: ${proc.stderr()}\n${text.slice(-2000)}`);
      if (/Kernel panic/.test(text) || Date.now() - tBoot > 300000) throw new Error(`guest did not get ready:\n${text.slice(-2000)}`);
      await sleep(200);
    }
    reniceThreads(proc.child.pid);
    log(`ready after ${((Date.now() - tBoot) / 1000).toFixed(1)} s; QEMU threads at nice ${PRIORITY}; settling 3 s`);
    await sleep(3000);

    // Under TCG the guest runs markedly slower while a migration is active (here the dirtier went from
    // 30 to 13-22 MiB/s even at 3 MiB/s of max-bandwidth): the dumps are taken during a migration
    // throttled to CAPTURE_BANDWIDTH into /dev/null, so the trace is the guest as it runs while it migrates.
    if (CAPTURE_BANDWIDTH) {
      await qmp.execute('migrate-set-capabilities', { capabilities: ALL_CAPS.map((c) => ({ capability: c, state: false })) });
      await qmp.execute('migrate-set-parameters', { 'max-bandwidth': CAPTURE_BANDWIDTH * MiB, 'downtime-limit': DOWNTIME_MS });
      await qmp.execute('migrate', { uri: 'exec:cat > /dev/null' });
      await sleep(2000);
    }
    // Dumps: stop, copy the memory-backend file (it is pc.ram), cont; INTERVAL s of running time apart.
    const files = [];
    const captureFrom = consoleMark(consolePath);
    for (let i = 0; i < DUMPS; i++) {
      if (i > 0) await sleep(INTERVAL * 1000);
      await qmp.execute('stop');
      const file = join(WORK, `dump-${i}.ram`);
      copyFileSync(memPath, file);
      files.push(file);
      await qmp.execute('cont');
    }
    await sleep(1500); // one more heartbeat into the window
    const captureSpeed = dirtierSpeed(consolePath, captureFrom, consoleMark(consolePath));
    if (CAPTURE_BANDWIDTH) await cancelMigration(qmp);
    report.captureDirtierStepsPerSecond = captureSpeed;
    log(`captured ${DUMPS} dumps ${INTERVAL} s apart; dirtier ${captureSpeed?.toFixed(2)} MiB/s of guest time`);
    // Paused while the planner works: a guest running a CPU-bound dirtier at high priority would starve it.
    await qmp.execute('stop');
    if (PRIORITY) setPriority(0, PRIORITY); // our codec speeds stand for QEMU's, whose threads run at PRIORITY
    const source = new FileDumpSource(files);
    const trace = Trace.build(source, INTERVAL);
    const rates = dirtyRateReport(trace);
    report.dirtyRate = {
      perInterval: rates.intervals.map((r) => r.pages),
      meanMiBps: rates.mean.mibPerSecond,
      sampled: rates.sampling.estimates.map((e) => e.mibPerSecond),
      workingSet: rates.workingSet,
    };
    log(
      `dirty pages per interval: ${rates.intervals.map((r) => r.pages).join(' ')} (mean ${rates.mean.mibPerSecond.toFixed(1)} MiB/s; QEMU sampling ${rates.sampling.estimates.map((e) => e.mibPerSecond).join(' ')}); working set ${rates.workingSet.total} pages, hot ${rates.workingSet.hot}`,
    );

    const predictions = new Map();
    for (const s of CHOSEN) {
      const setting = parseSetting(s.plan);
      // QEMU's compression threads share the host's cores with the migration thread and the guest's vCPU
      // (busy with its dirtier): each gets hostShare of a core while they all work, the guest included.
      const guestShare = hostShare(setting, { cores: cpus().length, vcpus: GUEST_VCPUS });
      const codecRate = measureCodecRate(trace, setting, 2048, setting.workers * guestShare);
      for (const bw of BANDWIDTHS) {
        const opts = {
          bandwidth: bw * MiB,
          downtimeLimitMs: DOWNTIME_MS,
          autoConverge: s.autoConverge,
          throttleResponse: THROTTLE_RESPONSE,
          timeCap: CAP,
          codecRate,
          guestShare,
        };
        predictions.set(`${s.name}@${bw}`, simulate(trace, setting, opts));
        // the other reading of the trace: pages that changed in every interval dirtied all the time
        trace.hotAlwaysDirty = true;
        predictions.set(`${s.name}@${bw}:hot`, simulate(trace, setting, opts));
        trace.hotAlwaysDirty = false;
      }
    }
    log('predictions done; migrating with QEMU');
    await qmp.execute('cont');
    await sleep(3000);

    for (const bw of BANDWIDTHS) {
      for (const s of CHOSEN) {
        const p = predictions.get(`${s.name}@${bw}`);
        const h = predictions.get(`${s.name}@${bw}:hot`);
        const qemuRuns = [];
        for (let k = 0; k < REPEATS; k++) {
          const from = consoleMark(consolePath);
          const run = await migrate(qmp, s, bw, proc.child.pid, memPath);
          run.dirtierStepsPerSecond = dirtierSpeed(consolePath, from, consoleMark(consolePath));
          run.heartbeats = heartbeats(consolePath, from, consoleMark(consolePath));
          run.speedByThrottle = speedByThrottle(run);
          if (run.speedByThrottle) log(`dirtier MiB/s by throttle: ${run.speedByThrottle.map((x) => `${x.percent}%: ${x.mibps} (${x.seconds} s)`).join(', ')}`);
          qemuRuns.push(run);
          if (!run.converged) break; // a run cancelled at the cap carries the link's bytes: once is enough
        }
        const q = medianRun(qemuRuns);
        // The same prediction with the trace replayed at the guest's speed during this run (after the fact:
        // it shows how much of a miss is the guest running slower or faster than when it was captured).
        let adjusted = null;
        if (captureSpeed && q.dirtierStepsPerSecond) {
          const scaled = Trace.build(source, INTERVAL * (captureSpeed / q.dirtierStepsPerSecond));
          const a = simulate(scaled, parseSetting(s.plan), {
            bandwidth: bw * MiB,
            downtimeLimitMs: DOWNTIME_MS,
            autoConverge: s.autoConverge,
            throttleResponse: THROTTLE_RESPONSE,
            timeCap: CAP,
            codecRate: p.codecRate,
            guestShare: 1, // the run's measured speed already includes any slowdown
          });
          adjusted = {
            converged: a.converged,
            totalTimeMs: Math.round(a.totalTime * 1000),
            transferred: a.wireBytes,
            dirtySyncCount: a.dirtySyncCount,
            throttle: a.throttle.final,
          };
        }
        const row = {
          bandwidthMiBps: bw,
          setting: s.name,
          predicted: {
            converged: p.converged,
            totalTimeMs: Math.round(p.totalTime * 1000),
            transferred: p.wireBytes,
            dirtySyncCount: p.dirtySyncCount,
            downtimeMs: p.final ? Math.round(p.final.downtimeMs) : null,
            // QEMU lifts the rate limit for the stop-and-copy (migration_completion), and the sink is a pipe to /dev/null:
            // there the downtime is the codec's time for the last pages, not the bandwidth's
            sinkDowntimeMs: p.final ? Math.round((p.final.pages / p.codecRate.delta) * 1000) : null,
            throttle: p.throttle.final,
            throttleSteps: p.throttle.steps.map((x) => ({ time: Math.round(x.time * 10) / 10, percent: x.percent })),
          },
          hotAlwaysDirty: {
            converged: h.converged,
            totalTimeMs: Math.round(h.totalTime * 1000),
            transferred: h.wireBytes,
            dirtySyncCount: h.dirtySyncCount,
            throttle: h.throttle.final,
          },
          qemu: q,
          qemuRuns,
          adjusted,
        };
        report.runs.push(row);
        log(
          `${bw} MiB/s ${s.name}: predicted ${fmt(row.predicted)} | QEMU (median of ${qemuRuns.length}) ${fmt(q)} | dirtier ${q.dirtierStepsPerSecond?.toFixed(2)} MiB/s${adjusted ? ` | at that speed: ${fmt(adjusted)}` : ''}`,
        );
      }
    }
    source.close();
  } finally {
    await quitQemu(proc, qmp);
    rmSync(sockDir, { recursive: true, force: true });
  }
  const out = values.json ?? join(WORK, 'results.json');
  writeFileSync(out, JSON.stringify(report, null, 2) + '\n');
  process.stdout.write(markdown(report) + '\n');
  log(`done in ${((Date.now() - t0) / 1000).toFixed(0)} s; ${out}`);
}

/**
 * The run standing for QEMU in the comparison: the median by bytes on the wire, where runs that
 * did not complete count as the largest (so the answer "converges" is the majority's).
 */
function medianRun(runs) {
  const key = (r) => (r.converged ? r.transferred : Number.POSITIVE_INFINITY);
  return [...runs].sort((a, b) => key(a) - key(b))[(runs.length - 1) >> 1];
}

/** setpriority() is per thread on Linux: renice each of QEMU's threads (new ones inherit from their creator). */
function reniceThreads(pid) {
  if (!PRIORITY || !pid) return;
  let tids = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`).map(Number);
  } catch {
    return; // QEMU has exited
  }
  for (const tid of tids) {
    try {
      setPriority(tid, PRIORITY);
    } catch {}
  }
}

/** Console bytes so far: marks a window for dirtierSpeed(). */
function consoleMark(path) {
  return existsSync(path) ? readFileSync(path, 'latin1').length : 0;
}

/**
 * The guest dirtier's speed (1 MiB steps per second of guest running time) between two console
 * marks, from the first and last heartbeat in the window; null with fewer than two heartbeats.
 */
function dirtierSpeed(path, from, to) {
  const ticks = heartbeats(path, from, to);
  if (ticks.length < 2) return null;
  const a = ticks[0];
  const b = ticks[ticks.length - 1];
  return b.uptime > a.uptime ? (b.steps - a.steps) / (b.uptime - a.uptime) : null;
}

/** The guest's heartbeats (dirtier steps, guest uptime) between two console marks. */
function heartbeats(path, from, to) {
  const text = readFileSync(path, 'latin1').slice(from, to);
  return [...text.matchAll(/steps=(\d+) uptime=([\d.]+)/g)].map((m) => ({ steps: Number(m[1]), uptime: Number(m[2]) }));
}

/**
 * The dirtier's speed (MiB/s) at each throttle level of a run: the guest's clock runs on while the
 * throttle sleeps its vCPU, so a level's stretch of wall time (throttleSteps, from the migrate
 * command) is the same stretch of uptime from the run's first heartbeat (to about a heartbeat).
 */
function speedByThrottle(run) {
  const ticks = run.heartbeats ?? [];
  if (ticks.length < 2 || !run.throttleSteps?.length) return null;
  const u0 = ticks[0].uptime;
  const edges = [{ time: 0, percent: 0 }, ...run.throttleSteps, { time: run.totalTimeMs / 1000, percent: null }];
  const out = [];
  for (let i = 0; i + 1 < edges.length; i++) {
    const inside = ticks.filter((t) => t.uptime - u0 >= edges[i].time && t.uptime - u0 <= edges[i + 1].time);
    if (inside.length < 2) continue;
    const a = inside[0];
    const b = inside[inside.length - 1];
    out.push({
      percent: edges[i].percent,
      seconds: Math.round((b.uptime - a.uptime) * 10) / 10,
      mibps: Math.round(((b.steps - a.steps) / (b.uptime - a.uptime)) * 100) / 100,
    });
  }
  return out;
}

function fmt(r) {
  return `${r.converged ? 'converged' : 'NOT converged'} ${(r.totalTimeMs / 1000).toFixed(1)} s, ${(r.transferred / MiB).toFixed(1)} MiB, ${r.dirtySyncCount} syncs, downtime ${r.downtimeMs ?? '–'} ms, throttle ${r.throttle}%`;
}

async function cancelMigration(qmp) {
  await qmp.execute('migrate_cancel');
  for (;;) {
    await sleep(200);
    const c = await qmp.execute('query-migrate');
    if (c.status !== 'cancelling') break;
  }
}

/** One QEMU migration of the running guest to a null sink; cancelled at the cap. */
async function migrate(qmp, s, bw, pid, memPath) {
  const caps = ALL_CAPS.map((c) => ({ capability: c, state: s.caps[c] === true }));
  await qmp.execute('migrate-set-capabilities', { capabilities: caps });
  await qmp.execute('migrate-set-parameters', { 'max-bandwidth': bw * MiB, 'downtime-limit': DOWNTIME_MS, ...s.params });
  const start = Date.now();
  const streamPath = join(WORK, 'run.mig');
  await qmp.execute('migrate', { uri: `exec:cat > ${streamPath}` });
  let info;
  const throttleSteps = []; // cpu-throttle-percentage as it changed (QEMU resets it when the migration ends)
  const dirtyRates = []; // QEMU's own dirty-page rate, updated at each sync period (>= 1 s): what its dirty log saw
  for (;;) {
    await sleep(200);
    reniceThreads(pid); // the migration and compression threads start with the migration
    info = await qmp.execute('query-migrate');
    const rate = info.ram?.['dirty-pages-rate'];
    if (rate && rate !== dirtyRates.at(-1)) dirtyRates.push(rate);
    const pct = info['cpu-throttle-percentage'] ?? 0;
    if (pct !== (throttleSteps.at(-1)?.percent ?? 0)) throttleSteps.push({ time: (Date.now() - start) / 1000, percent: pct });
    if (info.status === 'completed' || info.status === 'failed') break;
    if (Date.now() - start > CAP * 1000) {
      await cancelMigration(qmp);
      break;
    }
  }
  const done = info.status === 'completed';
  const result = {
    converged: done,
    status: done ? 'completed' : info.status === 'failed' ? `failed: ${info['error-desc'] ?? ''}` : 'cancelled at the cap',
    totalTimeMs: done ? info['total-time'] : (info['total-time'] ?? Date.now() - start),
    transferred: info.ram?.transferred ?? 0,
    dirtySyncCount: info.ram?.['dirty-sync-count'] ?? 0,
    downtimeMs: done ? info.downtime : null,
    throttle: info['cpu-throttle-percentage'] || (throttleSteps.at(-1)?.percent ?? 0),
    throttleSteps,
    expectedDowntimeMs: info['expected-downtime'] ?? null,
    // pages/s × 4 KiB; the mean of the distinct values QEMU reported during the run
    dirtyLogMiBps: dirtyRates.length ? ((dirtyRates.reduce((a, b) => a + b, 0) / dirtyRates.length) * 4096) / MiB : null,
  };
  // A completed migration leaves the source paused: its RAM now is what the destination must hold.
  // Pages where the stream's RAM differs are pages QEMU's dirty log missed (seen under TCG).
  if (done) result.stalePages = await stalePages(streamPath, memPath);
  rmSync(streamPath, { force: true });
  // The source is paused after a completed migration; let the workload run again before the next one.
  const st = await qmp.execute('query-status');
  if (!st.running) await qmp.execute('cont');
  await sleep(4000);
  return result;
}

/** Pages of pc.ram where the decoded stream differs from the paused source's memory file. */
async function stalePages(streamPath, memPath) {
  const ram = new RamImage();
  for await (const ev of decodeEvents(createReadStream(streamPath))) {
    if (ev.type === 'ram-blocks') ram.setBlocks(ev.blocks);
    else if (ev.type === 'page') ram.apply(ev);
  }
  const got = ram.blocks.get('pc.ram');
  const want = readFileSync(memPath);
  let stale = 0;
  for (let off = 0; off < want.length; off += 4096) {
    if (Buffer.compare(got.subarray(off, off + 4096), want.subarray(off, off + 4096)) !== 0) stale++;
  }
  return stale;
}

function markdown(report) {
  const rows = [
    '| MiB/s | setting | converged (pred / QEMU) | total s (pred / QEMU) | MiB on the wire (pred / QEMU median, error) | QEMU runs: MiB | dirty syncs (pred / QEMU) | downtime ms (pred at link / pred at sink / QEMU) | throttle % (pred / QEMU) | guest dirtier MiB/s in the run (capture: ' +
      (report.captureDirtierStepsPerSecond?.toFixed(2) ?? '?') +
      ") | QEMU's dirty log MiB/s | stale pages | at the run's dirtier speed: converged, MiB |",
    '|---:|---|---|---|---|---|---|---|---|---:|---:|---:|---|',
  ];
  for (const r of report.runs) {
    const p = r.predicted;
    const q = r.qemu;
    const err = q.transferred ? `${(((p.transferred - q.transferred) / q.transferred) * 100).toFixed(0)}%` : '–';
    const yes = (b) => (b ? 'yes' : 'no');
    const all = (r.qemuRuns ?? [q]).map((x) => `${(x.transferred / MiB).toFixed(1)}${x.converged ? '' : ' (capped)'}`).join(', ');
    rows.push(
      `| ${r.bandwidthMiBps} | ${r.setting} | ${yes(p.converged)} / ${yes(q.converged)}${p.converged === q.converged ? '' : ' **miss**'} | ${(p.totalTimeMs / 1000).toFixed(1)} / ${(q.totalTimeMs / 1000).toFixed(1)} | ${(p.transferred / MiB).toFixed(1)} / ${(q.transferred / MiB).toFixed(1)}, ${err} | ${all} | ${p.dirtySyncCount} / ${q.dirtySyncCount} | ${p.downtimeMs ?? '–'} / ${p.sinkDowntimeMs ?? '–'} / ${q.downtimeMs ?? '–'} | ${p.throttle} / ${q.throttle} | ${q.dirtierStepsPerSecond?.toFixed(2) ?? '–'} | ${q.dirtyLogMiBps?.toFixed(1) ?? '–'} | ${q.stalePages ?? '–'} | ${r.adjusted ? `${yes(r.adjusted.converged)}, ${(r.adjusted.transferred / MiB).toFixed(1)}` : '–'} |`,
    );
  }
  return rows.join('\n');
}

main().catch((e) => {
  console.error(`plan-vs-qemu failed: ${e instanceof Error ? e.stack : e}`);
  process.exit(1);
});
