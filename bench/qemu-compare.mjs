// Side by side with QEMU 7.2 on the same guest RAM (the last dump of the captured series, a
// 256 MiB Linux guest):
//
// 1. A one-iteration stream S is built from the dump with encodeDumps, framed by the `plain`
//    fixture's stream as template (its configuration, other RAMBlocks and device state; pc.ram
//    grown to 256 MiB; the first 1 MiB of pc.ram taken from the fixture, whose device state
//    needs its own option ROMs there). QEMU 7.2 loads S into a paused destination
//    (`-incoming defer -S`, the fixture's device setup with -m 256M); its RAM is checked.
// 2. From that paused VM QEMU migrates out at unlimited bandwidth, as QEMU times it
//    (query-migrate total-time): plain, then with its compress capability (zlib level 1, 2
//    compress threads). Once each to a file (decoded by migstream, checked against the dump,
//    counted), then timed to `exec:cat > /dev/null`. QEMU refuses to migrate a VM out twice
//    ("postmigrate"), so S is loaded into a fresh VM before every run.
// 3. migstream transcodes S (the same RAM) with the CLI: plain, zlib 1 on 2 workers, LZ4 on 2
//    workers; once to a file (decoded, checked, counted), then timed to /dev/null (wall time of
//    the command, node's start included; `node -e 0` is timed too).
// QEMU and migstream runs alternate, best of ROUNDS each, so bursts of other load hit both.
//
//   npm run build && node bench/qemu-compare.mjs          # ROUNDS=5 for more rounds (default 3)
//
// Skips with a notice when QEMU 7.2 is not installed.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  capabilityList,
  connectQmp,
  getConfig,
  loadFixture,
  pollMigrate,
  qemuArgs,
  qemuAvailable,
  quitQemu,
  QEMU_BIN,
  startQemu,
} from '../fixtures/qemu/lib.mjs';

const avail = qemuAvailable();
if (!avail.ok) {
  console.log(`qemu-compare: skipped, QEMU 7.2 is needed (${avail.reason})`);
  process.exit(0);
}

const { decodeAll, encodeDumps, readTemplate } = await import('../dist/index.node.js');
const { RamImage } = await import('../dist/sinks.js');
const { ensureDumps } = await import('../fixtures/dumps/lib.mjs');

const ROUNDS = Number(process.env.ROUNDS ?? 3);
const REPO = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(REPO, 'dist', 'cli', 'main.js');
const MiB = 1 << 20;
const LOW_MEMORY = MiB;
const log = (s) => process.stderr.write(`${s}\n`);
const loadStart = loadavg();
const tmp = mkdtempSync(join(tmpdir(), 'migstream-qemu-compare-'));
const same = (a, b) =>
  a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;

function decodeRam(path) {
  const ram = new RamImage();
  decodeAll(new Uint8Array(readFileSync(path)), (ev) => {
    if (ev.type === 'ram-blocks') ram.setBlocks(ev.blocks);
    else if (ev.type === 'page') ram.apply(ev);
  });
  return ram;
}

let proc;
let qmp;
let qmpDir;
try {
  // ---- the stream: the last dump, framed by the `plain` fixture
  const { files } = await ensureDumps({ quiet: true });
  const dumpPath = files[files.length - 1];
  const dump = new Uint8Array(readFileSync(dumpPath));
  const template = readTemplate(new Uint8Array(loadFixture('plain').stream));
  // The template's device state must meet its own low memory: kvmvapic (kvm-tpr-opt) re-reads its
  // option-ROM state below 1 MiB on load and refuses the Linux guest's. So the first 1 MiB of
  // pc.ram (BIOS shadow and option ROMs) comes from the fixture; the other 255 MiB are the dump's.
  dump.set(template.ram.blocks.get('pc.ram').subarray(0, LOW_MEMORY));
  template.ramBlocks = template.ramBlocks.map((b) => (b.idstr === 'pc.ram' ? { ...b, length: dump.length } : b));
  const parts = [];
  encodeDumps([{ idstr: 'pc.ram', dumps: [dump] }], (c) => parts.push(c.slice()), { template });
  const streamPath = join(tmp, 'S.stream');
  writeFileSync(streamPath, Buffer.concat(parts));
  const ramBytes = template.ramBlocks.reduce((n, b) => n + b.length, 0);
  const ramMB = ramBytes / 1e6;
  const ramDesc = template.ramBlocks.map((b) => `${b.idstr} ${b.length >= MiB ? `${b.length / MiB} MiB` : `${b.length / 1024} KiB`}`).join(', ');
  log(`stream S: ${statSync(streamPath).size} bytes, RAMBlocks ${ramDesc}`);

  // ---- a paused QEMU 7.2 holding that RAM. A VM that migrated out stays "postmigrate" and QEMU
  // refuses to migrate it again, so every outgoing migration gets a freshly loaded VM.
  const config = { ...getConfig('plain'), memory: dump.length / MiB };
  const memPath = join(tmp, 'vm-ram.bin');
  qmpDir = mkdtempSync(join(tmpdir(), 'migstream-qmp-'));
  const qmpPath = join(qmpDir, 'vm.sock');
  const args = qemuArgs(config, { memPath, qmpPath, incoming: true });
  const loads = [];
  async function loadedVm(checkRam) {
    rmSync(memPath, { force: true });
    proc = startQemu(args);
    qmp = await connectQmp(qmpPath, { timeoutMs: 20000 });
    const t = process.hrtime.bigint();
    await qmp.execute('migrate-incoming', { uri: `exec:cat ${streamPath}` });
    await pollMigrate(qmp, (i) => i.status === 'completed', { deadline: Date.now() + 300000, intervalMs: 10, what: 'incoming migration', proc });
    loads.push(Number(process.hrtime.bigint() - t) / 1e6);
    if (checkRam && !same(new Uint8Array(readFileSync(memPath)), dump)) throw new Error('QEMU loaded S, but its pc.ram differs from the dump');
    const status = await qmp.execute('query-status');
    if (status.running) throw new Error(`the loaded VM is ${status.status}; expected it paused`);
  }
  async function closeVm() {
    await quitQemu(proc, qmp).catch(() => proc.kill());
    qmp.close();
    proc = undefined;
    qmp = undefined;
  }
  /** Loads S into a fresh VM, migrates it out once to `uri` (zlib 1 on 2 threads with `compress`), quits. */
  async function qemuMigrate(uri, compress, checkRam = false) {
    await loadedVm(checkRam);
    try {
      if (compress) {
        await qmp.execute('migrate-set-capabilities', { capabilities: capabilityList({ compress: true }) });
        await qmp.execute('migrate-set-parameters', { 'compress-threads': 2, 'compress-level': 1 });
      }
      // "unlimited": QEMU has no off switch for the rate limit; 100 GiB/s is far above what it reaches here
      await qmp.execute('migrate-set-parameters', { 'max-bandwidth': 100 * 1024 * MiB, 'downtime-limit': 2000 });
      await qmp.execute('migrate', { uri });
      return await pollMigrate(qmp, (i) => i.status === 'completed', { deadline: Date.now() + 300000, intervalMs: 10, what: 'outgoing migration', proc });
    } finally {
      await closeVm();
    }
  }

  // ---- checks: QEMU's and our outputs decode to the dump
  const checked = {};
  for (const [name, on] of [
    ['qemu-plain', false],
    ['qemu-zlib', true],
  ]) {
    const out = join(tmp, `${name}.stream`);
    const info = await qemuMigrate(`exec:cat > ${out}`, on, name === 'qemu-plain');
    const ram = decodeRam(out).blocks.get('pc.ram');
    if (!ram || !same(ram, dump)) throw new Error(`${name}: QEMU's stream does not decode to the dump`);
    checked[name] = { bytes: statSync(out).size, info };
    rmSync(out);
  }
  const ours = {
    'ours-plain': [],
    'ours-zlib': ['--compress', 'zlib', '--level', '1', '--workers', '2'],
    'ours-lz4': ['--compress', 'lz4', '--workers', '2'],
  };
  for (const [name, extra] of Object.entries(ours)) {
    const out = join(tmp, `${name}.stream`);
    const r = spawnSync(process.execPath, [CLI, 'transcode', streamPath, out, ...extra], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${name}: ${r.stderr}`);
    const ram = decodeRam(out).blocks.get('pc.ram');
    if (!ram || !same(ram, dump)) throw new Error(`${name}: our stream does not decode to the dump`);
    checked[name] = { bytes: statSync(out).size };
    rmSync(out);
  }
  log('outputs checked: QEMU loaded S to the dump, and every stream written decodes to the dump');

  // ---- timed rounds, alternating
  const best = {};
  const keep = (k, v) => {
    if (!best[k] || v.ms < best[k].ms) best[k] = v;
  };
  const wall = (argv) => {
    const t = process.hrtime.bigint();
    const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8' });
    const ms = Number(process.hrtime.bigint() - t) / 1e6;
    if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
    return ms;
  };
  for (let round = 0; round < ROUNDS; round++) {
    log(`round ${round + 1}/${ROUNDS}`);
    let info = await qemuMigrate('exec:cat > /dev/null', false);
    keep('qemu-plain', { ms: info['total-time'], info });
    keep('ours-plain', { ms: wall([process.execPath, CLI, 'transcode', streamPath, '/dev/null']) });
    info = await qemuMigrate('exec:cat > /dev/null', true);
    keep('qemu-zlib', { ms: info['total-time'], info });
    keep('ours-zlib', { ms: wall([process.execPath, CLI, 'transcode', streamPath, '/dev/null', ...ours['ours-zlib']]) });
    keep('ours-lz4', { ms: wall([process.execPath, CLI, 'transcode', streamPath, '/dev/null', ...ours['ours-lz4']]) });
    keep('node-start', { ms: wall([process.execPath, '-e', '0']) });
  }

  // ---- report
  const S = '$S';
  const rows = [
    ['QEMU 7.2, plain', `(paused VM) \`migrate exec:cat > /dev/null\`, max-bandwidth 100 GiB/s`, 'qemu-plain'],
    ['migstream, plain', `\`migstream transcode ${S} /dev/null\``, 'ours-plain'],
    ['QEMU 7.2, compress zlib 1, 2 threads', '`migrate-set-capabilities compress=on`, `compress-threads 2`, `compress-level 1`, then as above', 'qemu-zlib'],
    ['migstream, zlib 1, 2 workers', `\`migstream transcode ${S} /dev/null --compress zlib --level 1 --workers 2\``, 'ours-zlib'],
    ['migstream, LZ4 acc 1, 2 workers (extension)', `\`migstream transcode ${S} /dev/null --compress lz4 --workers 2\``, 'ours-lz4'],
  ];
  const fmt = (x) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
  console.log(
    `guest RAM: ${dumpPath.replace(REPO, '')} (${ramDesc}: ${ramBytes} bytes = ${ramMB.toFixed(1)} MB); S = ${statSync(streamPath).size}-byte one-iteration stream of it, loaded by QEMU ${avail.version} into a paused VM before each QEMU run (load: fastest ${fmt(Math.min(...loads))} ms wall, ${loads.length} loads)`,
  );
  console.log(
    `best of ${ROUNDS} alternating rounds; QEMU's time is query-migrate total-time (ms), ours the command's wall time including node's start (\`node -e 0\`: ${fmt(best['node-start'].ms)} ms)\n`,
  );
  console.log('| what | command | time ms | RAM MB/s | wire bytes | wire / RAM | QEMU ram Mbit/s |');
  console.log('|---|---|---:|---:|---:|---:|---:|');
  for (const [what, cmd, key] of rows) {
    const b = best[key];
    const bytes = checked[key].bytes;
    const mbps = b.info ? fmt(b.info.ram.mbps) : '';
    console.log(`| ${what} | ${cmd} | ${fmt(b.ms)} | ${fmt(ramMB / (b.ms / 1000))} | ${bytes} | ${((bytes / ramBytes) * 100).toFixed(1)}% | ${mbps} |`);
  }
  const q = best['qemu-plain'].info;
  const qz = best['qemu-zlib'].info;
  console.log(
    `\nQEMU plain: setup ${q['setup-time']} ms, downtime ${q.downtime} ms, ${q.ram.normal} normal + ${q.ram.duplicate} zero pages, ${q.ram.transferred} bytes transferred`,
  );
  console.log(`QEMU compress: setup ${qz['setup-time']} ms, downtime ${qz.downtime} ms, compression ${JSON.stringify(qz.compression ?? {})}`);
  console.log(`wire bytes: each output written once to a file, decoded by migstream and checked against the dump; timed runs write to /dev/null`);
  console.log(
    `${cpus().length} CPUs (${cpus()[0]?.model}); load average ${loadStart.map((x) => x.toFixed(2)).join(' ')} at the start, ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')} at the end; QEMU: ${QEMU_BIN} ${avail.version}`,
  );
  console.log(`destination: ${[QEMU_BIN, ...args].join(' ').replaceAll(tmp, '$TMP').replaceAll(qmpDir, '$QMP').replaceAll(REPO, '')}`);
} finally {
  if (proc) await quitQemu(proc, qmp).catch(() => proc.kill());
  rmSync(tmp, { recursive: true, force: true });
  if (qmpDir) rmSync(qmpDir, { recursive: true, force: true });
}
