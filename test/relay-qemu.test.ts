import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { pollMigrate, sleep } from '../fixtures/qemu/lib.mjs';
import { ReturnPathDecoder } from '../src/stream/return-path.js';
import { decodeRecording } from '../src/relay/decode-recording.js';
import { VerifyingRamStore } from '../src/stream/digest.js';
import { RamImage } from '../src/stream/ram-image.js';
import { requireBuiltCli, runCli } from './support/cli.js';
import { qemuGate } from './support/qemu.js';
import { readRam, startDestination, startRelay, startSource, waitMigration, within, type RelayProcess, type Vm } from './support/relay.js';
import { replayInto } from './support/replay.js';

const gate = qemuGate();
requireBuiltCli();

/** The relay pair of the issue: QEMU → relay A (--xbzrle --compress lz4) → tcp → relay B → QEMU, both recording. */
async function relayPair(work: string, label: string, extraA: string[] = []) {
  const recA = join(work, `${label}-recA`);
  const recB = join(work, `${label}-recB`);
  const dstUri = `unix:${join(work, `${label}-dst.sock`)}`;
  const b = startRelay(['--listen', 'tcp:127.0.0.1:0', '--connect', dstUri, '--once', '--record', recB, '--json', '--idle-timeout', '60']);
  running.push(b);
  const bUri = await within(b.listening, 10000, 'relay B listening');
  const aUri = `unix:${join(work, `${label}-a.sock`)}`;
  const a = startRelay([
    '--listen',
    aUri,
    '--connect',
    bUri,
    '--xbzrle',
    '--compress',
    'lz4',
    ...extraA,
    '--once',
    '--record',
    recA,
    '--json',
    '--idle-timeout',
    '60',
  ]);
  running.push(a);
  await within(a.listening, 10000, 'relay A listening');
  return { a, b, aUri, bUri, dstUri, recA, recB };
}

const running: RelayProcess[] = [];
const vms: Vm[] = [];
let work = '';

describe.skipIf(!gate.run)('relay pair between two real QEMU 7.2', () => {
  beforeAll(() => {
    // tmpfs: a postcopy destination registers its file-backed RAM with userfaultfd, which ext4 files refuse (EINVAL).
    work = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'migstream-relay-'));
  });
  afterEach(async () => {
    for (const r of running.splice(0)) r.kill();
    for (const vm of vms.splice(0)) await vm.close();
  });
  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  for (const [label, caps] of [
    ['precopy', {}],
    ['return-path', { 'return-path': true }],
  ] as const) {
    it(`${label}: the destination's RAM equals a fresh destination fed the recorded source bytes, on fewer bytes between the relays`, async () => {
      const p = await relayPair(work, label);
      const dst = await startDestination(work, `${label}-dst`, caps, p.dstUri);
      vms.push(dst);
      const src = await startSource(work, caps, { 'max-bandwidth': 256 << 20, 'downtime-limit': 300 });
      vms.push(src);
      await src.qmp.execute('migrate', { uri: p.aUri });
      const info = await waitMigration(src, 'source');
      expect(info.status).toBe('completed');
      expect((await waitMigration(dst, 'destination')).status).toBe('completed');
      const [ra, rb] = await within(Promise.all([p.a.exited, p.b.exited]), 20000, 'relays exit after --once');
      expect([ra.code, rb.code, ra.stderr + rb.stderr]).toEqual([0, 0, expect.not.stringMatching(/relay: (?!listening)/)]);
      const sa = JSON.parse(ra.stdout);
      const sb = JSON.parse(rb.stdout);
      expect(sa.connections.map((c: { kind: string }) => c.kind)).toEqual(['main']);
      // Relay A's recording is QEMU's stream; relay B's is what went between the relays.
      const qemuBytes = statSync(join(p.recA, 'conn-0.s2d')).size;
      const between = statSync(join(p.recB, 'conn-0.s2d')).size;
      expect(sa.connections[0].s2dIn).toBe(qemuBytes);
      expect(sa.connections[0].s2dOut).toBe(between);
      expect(between).toBeLessThan(qemuBytes);
      // The destination's answers came back through both relays unchanged.
      expect(sb.connections[0].d2s).toBe(sa.connections[0].d2s);
      if (label === 'return-path') expect(sa.connections[0].d2s).toBeGreaterThan(0);
      else expect(sa.connections[0].d2s).toBe(0);

      // Replayed at the pace the source's bytes reached relay A (conn-0.timing).
      const oracle = await replayInto(work, `${label}-oracle`, caps, p.recA, vms, ['--pace', 'recorded']);
      const live = readRam(dst.memPath);
      expect(live.subarray(8 << 20, (8 << 20) + 4096).some((b) => b !== 0)).toBe(true); // the guest's hot pages arrived
      expect(live.equals(readRam(oracle.memPath))).toBe(true);
      // Both recordings read as streams: extract gives the oracle's pc.ram, verify agrees for relay B's; an
      // index.json-less copy with a stray file beside the conn-N files reads the same.
      const out = join(work, `${label}-extract`);
      expect(runCli(['extract', p.recA, '--out', out]).code).toBe(0);
      expect(readRam(join(out, 'pc.ram.bin')).equals(live)).toBe(true);
      const bare = join(work, `${label}-bare`);
      cpSync(p.recB, bare, { recursive: true });
      rmSync(join(bare, 'index.json'));
      writeFileSync(join(bare, 'notes.txt'), 'not a connection');
      expect(runCli(['verify', bare, '--against', out]).code).toBe(0);
      console.log(`relay ${label}: QEMU ${qemuBytes} bytes, between relays ${between} (${((100 * between) / qemuBytes).toFixed(1)}%)`);
    });
  }

  /** A slow migration through the pair, for the fault tests: 8 MiB/s, so it runs for seconds. */
  async function slowMigration(label: string, via?: (aUri: string) => Promise<string>) {
    const p = await relayPair(work, label);
    const dst = await startDestination(work, `${label}-dst`, {}, p.dstUri);
    vms.push(dst);
    const src = await startSource(work, {}, { 'max-bandwidth': 1 << 20, 'downtime-limit': 1 });
    vms.push(src);
    await src.qmp.execute('migrate', { uri: via ? await via(p.aUri) : p.aUri });
    await sleep(1500);
    return { ...p, src, dst };
  }

  async function expectFailedEverywhere(m: Awaited<ReturnType<typeof slowMigration>>, relays: RelayProcess[]) {
    expect((await waitMigration(m.src, 'source', 30000)).status).toBe('failed');
    for (const r of relays) {
      const x = await within(r.exited, 20000, 'relay exit');
      expect(x.code).not.toBe(0);
      // one line: the reason
      const lines = x.stderr.split('\n').filter((l) => l && !l.includes('listening on'));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^migstream relay: /);
    }
  }

  it('destination killed mid-migration: the source fails, both relays exit with a reason', async () => {
    const m = await slowMigration('kill-dst');
    await m.dst.proc.kill();
    await expectFailedEverywhere(m, [m.a, m.b]);
    expect((await m.b.exited).stderr).toMatch(/destination (closed|went away on) conn-0 before the migration stream ended/);
  });

  it('relay B killed mid-migration: the source fails, relay A exits with a reason, the destination is released', async () => {
    const m = await slowMigration('kill-b');
    m.b.kill();
    await expectFailedEverywhere(m, [m.a]);
    expect((await m.a.exited).stderr).toMatch(/destination (closed|went away on) conn-0/);
    // Relay B's socket went with its process: the destination's load fails instead of waiting.
    expect((await waitMigration(m.dst, 'destination', 30000).catch((e: Error) => ({ status: `gone: ${e.message}` }))).status).toMatch(/failed|gone/);
  });

  it('garbage into relay A: a typed error, exit 3, both sides closed, the source fails', async () => {
    let proxy: Server | undefined;
    const m = await slowMigration('garbage', async (aUri) => {
      // Between QEMU and relay A: from byte 100,000 on, every byte becomes 0xee.
      const path = join(work, 'garbage-proxy.sock');
      proxy = createServer((s: Socket) => {
        const up = createConnection(aUri.slice(5));
        let seen = 0;
        s.on('data', (d: Buffer) => {
          const out = Buffer.from(d);
          for (let i = 0; i < out.length; i++) if (seen + i >= 100000) out[i] = 0xee;
          seen += d.length;
          up.write(out);
        });
        up.on('data', (d) => s.write(d));
        for (const [x, y] of [
          [s, up],
          [up, s],
        ] as const) {
          x.on('close', () => y.destroy());
          x.on('error', () => {});
        }
      });
      await new Promise<void>((r) => proxy!.listen(path, r));
      return `unix:${path}`;
    });
    try {
      await expectFailedEverywhere(m, [m.a, m.b]);
      const a = await m.a.exited;
      expect(a.code).toBe(3);
      expect(a.stderr).toMatch(/bad stream on conn-0 \[[A-Z_]+\] .*(at|offset)/i);
      const b = await m.b.exited;
      expect([b.code, b.stderr]).toEqual([1, expect.stringMatching(/source closed conn-0 before the migration stream ended/)]);
    } finally {
      proxy?.close();
    }
  });

  for (const [label, caps, running] of [
    ['postcopy-paused', { 'postcopy-ram': true }, false],
    ['postcopy-running', { 'postcopy-ram': true }, true],
    ['preempt-running', { 'postcopy-ram': true, 'postcopy-preempt': true }, true],
  ] as const) {
    it(`${label}: postcopy through the relay pair after the first round`, async () => {
      // postcopy-running: relay A compresses on 2 workers until POSTCOPY_LISTEN, inline after it.
      const p = await relayPair(work, label, label === 'postcopy-running' ? ['--workers', '2'] : []);
      const dst = await startDestination(work, `${label}-dst`, caps, p.dstUri, running);
      vms.push(dst);
      // Postcopy's background push slowed down, so the running guest's faults race it and win.
      const src = await startSource(work, caps, { 'max-bandwidth': 8 << 20, 'downtime-limit': 1, ...(running ? { 'max-postcopy-bandwidth': 2 << 20 } : {}) });
      vms.push(src);
      await src.qmp.execute('migrate', { uri: p.aUri });
      await pollMigrate(src.qmp, (i: any) => i.ram?.['dirty-sync-count'] >= 2 || !['setup', 'active'].includes(i.status), {
        deadline: Date.now() + 60000,
        intervalMs: 50,
        what: 'first round',
      });
      await src.qmp.execute('migrate-start-postcopy');
      const info = await waitMigration(src, 'source');
      expect(info.status).toBe('completed');
      expect((await waitMigration(dst, 'destination')).status).toBe('completed');
      const [ra, rb] = await within(Promise.all([p.a.exited, p.b.exited]), 20000, 'relays exit after --once');
      expect([ra.code, rb.code]).toEqual([0, 0]);
      const sa = JSON.parse(ra.stdout);
      const sb = JSON.parse(rb.stdout);
      expect(sa.connections.map((c: { kind: string }) => c.kind)).toEqual(label.startsWith('preempt') ? ['main', 'preempt'] : ['main']);
      const qemuBytes = statSync(join(p.recA, 'conn-0.s2d')).size;
      const between = statSync(join(p.recB, 'conn-0.s2d')).size;
      expect(between).toBeLessThan(qemuBytes);
      const rp = returnPath(join(p.recA, 'conn-0.d2s'));
      // The source is stopped from the switch on: its RAM is what the destination must end with.
      const source = readRam(src.memPath);
      const dest = readRam(dst.memPath);
      // Replayed into a fresh paused destination, the recording gives the paused source's RAM.
      const oracle = await replayInto(work, `${label}-oracle`, caps, p.recA, vms);
      expect(readRam(oracle.memPath).equals(source)).toBe(true);
      if (!running) {
        expect(dest.equals(source)).toBe(true);
      } else {
        // The guest ran on the destination during postcopy: it faulted pages through both relays.
        expect(rp.requests).toBeGreaterThan(0);
        // Without preempt, requested pages come on the main channel: relay B saw some of them go out (with preempt they take conn-1).
        if (!label.startsWith('preempt')) expect(sb.connections[0].requestedPages.requestToPage.count).toBeGreaterThan(0);
        // What the guest does not write must be the source's, and it keeps running (its hot pages change).
        for (const [at, n] of [
          [2 << 20, 256 << 10],
          [3 << 20, 1 << 20],
        ] as const)
          expect(dest.subarray(at, at + n).equals(source.subarray(at, at + n))).toBe(true);
        const hot = () => readRam(dst.memPath).subarray(8 << 20, (8 << 20) + 512 * 4096);
        const before = Buffer.from(hot());
        await sleep(500);
        expect(hot().equals(before)).toBe(false);
        expect((await dst.qmp.execute('query-status')).status).toBe('running');
      }
      // The recording decodes as one migration: extract rebuilds the source's RAM from it.
      const out = join(work, `${label}-extract`);
      const x = runCli(['extract', p.recA, '--out', out]);
      expect([x.code, x.stderr]).toEqual([0, expect.stringMatching(/^extracted \d+ files/)]);
      expect(readRam(join(out, 'pc.ram.bin')).equals(source)).toBe(true);
      // ...in QEMU's order: the discards zero pages precopy had filled (ram_discard_range), which postcopy sends again.
      const d = await discardsApplied(p.recA);
      expect([d.pages > 0, d.filledBefore > 0, d.zeroAfter]).toEqual([true, true, d.pages]);
      expect(d.resent).toBe(d.pages);
      // inspect shows the switch as QEMU 7.2's postcopy_start writes it, and the return path.
      const ins = runCli(['inspect', p.recA, '--json']);
      expect(ins.code).toBe(0);
      const mig = JSON.parse(ins.stdout).migration;
      const names: string[] = mig.commands.map((c: { name: string }) => c.name);
      const discards = names.filter((n) => n === 'POSTCOPY_RAM_DISCARD').length;
      expect(discards).toBeGreaterThan(0);
      expect(names).toEqual(['OPEN_RETURN_PATH', 'PING', 'POSTCOPY_ADVISE', ...Array(discards).fill('POSTCOPY_RAM_DISCARD'), 'PING', 'PACKAGED', 'PING']);
      expect(mig.commands.find((c: { name: string }) => c.name === 'PACKAGED').nested).toEqual(['POSTCOPY_LISTEN', 'PING 3', 'POSTCOPY_RUN']);
      expect([mig.phases.precopyRamSections > 0, mig.phases.precopyPages > 0]).toEqual([true, true]);
      expect(mig.phases.postcopyPages + mig.phases.preemptPages).toBeGreaterThan(0);
      // With postcopy-preempt, requested pages that were still to be sent went on the second channel.
      if (label.startsWith('preempt')) expect(mig.phases.preemptPages).toBeGreaterThan(0);
      expect([...mig.returnPath.pongs].sort()).toEqual([1, 2, 3, 4]);
      expect(mig.returnPath.shut).toBe(0);
      // A running destination faults; a paused one may still ask for a page or two (0–2 seen, docs/socket-migration.md).
      if (running) expect(mig.returnPath.requestedPages).toBeGreaterThan(0);
      const pa = sa.connections[0].requestedPages;
      console.log(
        `relay ${label}: QEMU ${qemuBytes} bytes, between relays ${between} (${((100 * between) / qemuBytes).toFixed(1)}%); ` +
          `return path ${JSON.stringify(rp)}; phases ${JSON.stringify(mig.phases)}; requested pages at relay A: ${JSON.stringify(pa)}, at relay B: ${JSON.stringify(sb.connections[0].requestedPages)}`,
      );
    });
  }
});

/** Rebuilds a recording's RAM in QEMU's order, watching the discarded pages: filled before, zero after, sent again later. */
async function discardsApplied(rec: string) {
  const image = new RamImage();
  const ram = new VerifyingRamStore(image);
  const discarded = new Set<number>();
  const r = { pages: 0, filledBefore: 0, zeroAfter: 0, resent: 0 };
  const zero = Buffer.alloc(4096);
  const pageAt = (o: number) => Buffer.from(image.blocks.get('pc.ram')!.subarray(o, o + 4096));
  await decodeRecording(rec, (ev) => {
    if (ev.type === 'command' && ev.info?.name === 'POSTCOPY_RAM_DISCARD' && ev.info.block === 'pc.ram') {
      const offsets = ev.info.ranges.flatMap(([start, length]) => Array.from({ length: length / 4096 }, (_, i) => start + i * 4096));
      r.filledBefore += offsets.filter((o) => !pageAt(o).equals(zero)).length;
      ram.handle(ev);
      r.zeroAfter += offsets.filter((o) => pageAt(o).equals(zero)).length;
      r.pages += offsets.length;
      for (const o of offsets) discarded.add(o);
      return;
    }
    if (ev.type === 'page' && ev.block.idstr === 'pc.ram' && discarded.delete(ev.offset)) r.resent++;
    ram.handle(ev);
  });
  return r;
}

function returnPath(path: string): { pongs: number[]; requests: number; shut: number[] } {
  const r = { pongs: [] as number[], requests: 0, shut: [] as number[] };
  const d = new ReturnPathDecoder((ev) => {
    if (ev.type === 'PONG') r.pongs.push(ev.value);
    else if (ev.type === 'SHUT') r.shut.push(ev.value);
    else if (ev.type === 'REQ_PAGES' || ev.type === 'REQ_PAGES_ID') r.requests++;
  });
  d.push(readFileSync(path));
  d.end();
  return r;
}
