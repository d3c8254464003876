import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildCpio, ensurePrerequisites, qemuArgs } from '../fixtures/dumps/lib.mjs';
import { capabilityList, connectQmp, pollMigrate, sleep, startQemu, type QemuProcess, type QmpClient } from '../fixtures/qemu/lib.mjs';
import { requireBuiltCli, runCli } from './support/cli.js';
import { qemuGate } from './support/qemu.js';
import { startRelay, waitMigration, within, type RelayProcess, type Vm } from './support/relay.js';
import { toolGate } from './support/tools.js';

const gate = qemuGate();
// The guest is Debian's kernel with busybox-static (fixtures/dumps; .ci/run installs both).
const guest =
  gate.run &&
  toolGate(['dpkg', '-s', 'busybox-static'], 'the Linux guest (busybox-static)') &&
  toolGate(['sh', '-c', 'ls /boot/vmlinuz-*'], 'the Linux guest (a Debian kernel: linux-image-amd64)');
requireBuiltCli();

// A Linux guest that checks its own memory with data QEMU's dirty tracking cannot get wrong:
// - /mnt/static, 8 MiB of random data written before the migration and never again;
// - /mnt/same, a copy of it, rewritten in place with identical bytes on every pass (busybox cat uses
//   sendfile: page cache to page cache, no user buffer that could go stale), so it is always dirty: it is
//   discarded at the switch and must come back through both relays when the destination touches it, yet a
//   write QEMU 7.2 under TCG misses (seen with no relay at all) leaves the same bytes;
// - /mnt/churn, 1 MiB rewritten in place with fresh random data per pass, not checked: it keeps precopy
//   busy (in place: no page-cache allocation whose kernel metadata a lost write could corrupt).
// Each pass hashes static and same (reading what the switch discarded), prints CHECK OK n or CHECK BAD n,
// then rewrites same and churn.
const INIT = `#!/bin/sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs -o size=64m tmpfs /mnt
dd if=/dev/urandom of=/mnt/static bs=64k count=128 2>/dev/null
cat /mnt/static > /mnt/same
want=$(sha256sum /mnt/static | cut -d' ' -f1)
# Always writing a little: every dirty sync finds more than the 1 ms downtime limit lets through, so
# precopy cannot complete before the test switches to postcopy.
( while true; do dd if=/dev/urandom of=/mnt/busy bs=4k count=32 conv=notrunc 2>/dev/null; done ) &
echo "CHECK READY $want" > /dev/console
n=0
while true; do
  n=$((n + 1))
  gs=$(sha256sum /mnt/static | cut -d' ' -f1)
  gm=$(sha256sum /mnt/same | cut -d' ' -f1)
  if [ "$gs" = "$want" ] && [ "$gm" = "$want" ]; then echo "CHECK OK $n" > /dev/console; else echo "CHECK BAD $n static=$gs same=$gm" > /dev/console; fi
  cat /mnt/static 1<>/mnt/same
  dd if=/dev/urandom of=/mnt/churn bs=64k count=16 conv=notrunc 2>/dev/null
done
`;

// Diagnostics only: MIGSTREAM_LINUX_DIRECT=1 migrates QEMU to QEMU with no relay, same guest, same checks.
const direct = process.env.MIGSTREAM_LINUX_DIRECT === '1';

let work = '';
const cleanup: (() => unknown)[] = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
  if (work && !process.env.KEEP) rmSync(work, { recursive: true, force: true });
});

async function linuxVm(name: string, kernel: string, initrd: string, incoming: boolean): Promise<Vm & { console: string }> {
  const memPath = join(work, `${name}.ram`);
  const qmpPath = join(work, `${name}.qmp`);
  const console = join(work, `${name}.console`);
  const args = qemuArgs({ memPath, kernel, initrd, console, qmp: qmpPath, ramMiB: 128 });
  // On a loaded host the kernel's IO-APIC timer check can fail under TCG ("IO-APIC + timer doesn't work!", a panic at boot).
  const append = args.indexOf('-append') + 1;
  args[append] = `${args[append]} no_timer_check`;
  const proc: QemuProcess = startQemu(incoming ? [...args, '-incoming', 'defer'] : args);
  cleanup.push(() => proc.kill());
  const qmp: QmpClient = await connectQmp(qmpPath, { timeoutMs: 30000 });
  return { proc, qmp, memPath, console, close: async () => (qmp.close(), proc.kill()) };
}

async function consoleLine(path: string, pattern: RegExp, what: string, ms: number): Promise<RegExpExecArray> {
  const deadline = Date.now() + ms;
  for (;;) {
    const m = existsSync(path) ? pattern.exec(readFileSync(path, 'utf8')) : null;
    if (m) return m;
    if (Date.now() > deadline)
      throw new Error(`${what}: not seen within ${ms} ms: ${existsSync(path) ? readFileSync(path, 'utf8').slice(-500) : '(no console)'}`);
    await sleep(200);
  }
}

const consoleLines = (path: string) => readFileSync(path, 'utf8').replace(/\r/g, '').trim().split('\n');

// retry: QEMU 7.2 under TCG loses writes the guest made just before the switch, relay or not (QEMU's own
// stream lacked the final content of 5 and 9 pages of the stopped source in two runs). Landing in the
// guest kernel such a lost write can kill it: seen once, through the relays, in a full-suite run on an
// overloaded machine; QEMU alone broke the straddling pass in 2 of 3 runs. A relay bug that drops or
// garbles pages fails every attempt: the recordings must rebuild the same RAM on both hops.
// One quiet CI run (session 5) failed three attempts in three ways: the destination kernel oopsed
// (an NX fault in a kernel stack page), precopy completed before the switch (no postcopy), and the
// source sat in postcopy-paused; the next two runs passed (once on a retry): five attempts in all.
describe.skipIf(!gate.run || !guest)('postcopy of a running Linux guest through the relay pair', () => {
  it('the destination guest faults its dirty pages through both relays, keeps running, and its memory check passes on every pass', {
    timeout: 400000,
    retry: 4,
  }, async () => {
    // A retry starts clean: the last attempt's QEMUs and relays stopped, its files gone.
    for (const c of cleanup.splice(0).reverse()) await c();
    if (work && !process.env.KEEP) rmSync(work, { recursive: true, force: true });
    work = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'migstream-relay-linux-'));
    const pre = ensurePrerequisites(() => {});
    const initrd = join(work, 'initrd.cpio');
    writeFileSync(
      initrd,
      buildCpio([
        ...['bin', 'dev', 'proc', 'mnt'].map((path) => ({ path, type: 'dir' as const })),
        { path: 'dev/console', type: 'char', major: 5, minor: 1 },
        { path: 'bin/busybox', type: 'file', mode: 0o755, data: readFileSync(pre.busybox.path) },
        { path: 'bin/sh', type: 'symlink', target: 'busybox' },
        { path: 'init', type: 'file', mode: 0o755, data: new TextEncoder().encode(INIT) },
      ]),
    );
    const caps = { 'postcopy-ram': true };
    const dstUri = `unix:${join(work, 'dst.sock')}`;
    let srcUri = dstUri;
    let a: RelayProcess | undefined;
    let b: RelayProcess | undefined;
    if (!direct) {
      const relay = (args: string[]) => {
        const r = startRelay([...args, '--once', '--json', '--idle-timeout', '120']);
        cleanup.push(() => r.kill());
        return r;
      };
      b = relay(['--listen', 'tcp:127.0.0.1:0', '--connect', dstUri, '--record', join(work, 'recB')]);
      const bUri = await within(b.listening, 10000, 'relay B listening');
      srcUri = `unix:${join(work, 'a.sock')}`;
      a = relay(['--listen', srcUri, '--connect', bUri, '--xbzrle', '--compress', 'lz4', '--record', join(work, 'recA')]);
      await within(a.listening, 10000, 'relay A listening');
    }

    const dst = await linuxVm('dst', pre.kernel.path, initrd, true);
    await dst.qmp.execute('migrate-set-capabilities', { capabilities: capabilityList(caps) });
    await dst.qmp.execute('migrate-incoming', { uri: dstUri });
    const src = await linuxVm('src', pre.kernel.path, initrd, false);
    // Two passes: /mnt/same has been rewritten (dirty) at least once.
    await consoleLine(src.console, /CHECK OK 2\b/, 'the guest checking its memory on the source', 150000);
    await src.qmp.execute('migrate-set-capabilities', { capabilities: capabilityList(caps) });
    await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 64 << 20, 'downtime-limit': 1, 'max-postcopy-bandwidth': 512 << 10 });
    // Postcopy pushes at 512 KiB/s: the guest, running on the destination, touches pages dirty at the switch
    // (its kernel's, its shell's, the rewritten file's) before they are pushed, so it must fault them.
    await src.qmp.execute('migrate', { uri: srcUri });
    // After the second round: /mnt/same went out twice, so relay A's XBZRLE cache holds it, and it is dirty
    // again at the switch (discarded on the destination, sent again in postcopy).
    await pollMigrate(src.qmp, (i: any) => i.ram?.['dirty-sync-count'] >= 3 || !['setup', 'active'].includes(i.status), {
      deadline: Date.now() + 120000,
      intervalMs: 50,
      what: 'two precopy rounds',
    });
    await src.qmp.execute('migrate-start-postcopy');
    expect((await waitMigration(src, 'source', 180000)).status).toBe('completed');
    expect((await waitMigration(dst, 'destination', 60000)).status).toBe('completed');
    expect((await dst.qmp.execute('query-status')).status).toBe('running');
    // The destination's console has only what the guest printed after the switch; wait for two whole passes
    // that started on the destination.
    await consoleLine(dst.console, /CHECK \w+ \d+[^\n]*\n[\s\S]*CHECK \w+ \d+[^\n]*\n[\s\S]*CHECK \w+ \d+/, 'three memory checks on the destination', 120000);
    const srcLines = consoleLines(src.console).filter((l) => l.startsWith('CHECK'));
    const dstLines = consoleLines(dst.console);
    console.log(`relay linux postcopy${direct ? ' (direct)' : ''}: source ${JSON.stringify(srcLines.slice(-2))}, destination ${JSON.stringify(dstLines)}`);
    expect(srcLines.filter((l) => l.startsWith('CHECK BAD'))).toEqual([]);
    // The first pass on the destination's console straddled the switch: begun on the source, it is numbered
    // after the source's last. A write the source made just before the switch can be missing on the destination
    // with QEMU 7.2 under TCG, relay or not (docs/socket-migration.md): what that pass held in memory (the
    // hashing process, the kernel's state for it) may be wrong. Every pass after it runs on the destination
    // alone, on data such a lost write cannot change, and must pass, with nothing else on the console.
    const straddle = dstLines.findIndex((l) => l.startsWith('CHECK'));
    const last = Number(/CHECK OK (\d+)/.exec(srcLines.at(-1) ?? '')?.[1] ?? 0);
    expect(Number(/CHECK \w+ (\d+)/.exec(dstLines[straddle]!)![1])).toBe(last + 1);
    const after = dstLines.slice(straddle + 1);
    expect(after.length).toBeGreaterThanOrEqual(2);
    for (const line of after) expect(line).toMatch(/^CHECK OK \d+$/);
    if (!a || !b) return;

    const [ra, rb] = await within(Promise.all([a.exited, b.exited]), 20000, 'relays exit');
    expect([ra.code, rb.code]).toEqual([0, 0]);
    // The guest faulted on the destination: its page requests went back through relay B and relay A
    // (relay A's recording of the return path is what reached it through B). Whether relay B then saw a
    // requested page go out depends on whether the source had already pushed it: logged, not asserted.
    const requested = JSON.parse(rb.stdout).connections[0].requestedPages;
    const ins = JSON.parse(runCli(['inspect', join(work, 'recA'), '--json']).stdout).migration;
    console.log(
      `relay linux postcopy: requests ${ins.returnPath.requestedPages}, phases ${JSON.stringify(ins.phases)}, requested pages at relay B ${JSON.stringify(requested)}`,
    );
    expect(ins.returnPath.requestedPages).toBeGreaterThan(0);
    // What went between the relays rebuilds to exactly what QEMU sent, discards applied.
    for (const r of ['recA', 'recB']) expect(runCli(['extract', join(work, r), '--out', join(work, `${r}-x`)]).code).toBe(0);
    const sent = readFileSync(join(work, 'recA-x', 'pc.ram.bin'));
    expect(readFileSync(join(work, 'recB-x', 'pc.ram.bin')).equals(sent)).toBe(true);
    // The source is stopped from the switch on: pages where what QEMU sent differs from its RAM are writes
    // QEMU's own stream lost (no relay involved: relay A's recording is the bytes QEMU wrote).
    const stopped = readFileSync(src.memPath);
    let lost = 0;
    for (let at = 0; at < stopped.length; at += 4096) if (!stopped.subarray(at, at + 4096).equals(sent.subarray(at, at + 4096))) lost++;
    console.log(`relay linux postcopy: pages where QEMU's stream differs from the stopped source: ${lost}`);
  });
});
