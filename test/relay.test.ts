import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadFixture } from '../fixtures/qemu/lib.mjs';
import { Relay, type RelayResult } from '../src/relay/relay.js';
import { parseUri } from '../src/relay/uri.js';
import { readTiming } from '../src/relay/recording.js';
import { replayRecording } from '../src/relay/replay.js';
import { transcodeBytes } from '../src/stream/transcode.js';
import { decodeAll } from '../src/stream/decoder.js';
import { InlinePool } from '../src/stream/pool/pool.js';
import { runTask } from '../src/stream/pool/tasks.js';
import { PoolThenInline } from '../src/relay/pooled-writer.js';
import '../src/node/install.js';
import { encodeManifest } from '../src/stream/manifest.js';
import { extensionsFor, resolveSpecs } from '../src/stream/page-codecs.js';
import { CLI, requireBuiltCli } from './support/cli.js';

requireBuiltCli();
const work = mkdtempSync(join(tmpdir(), 'migstream-relay-unit-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
let seq = 0;

/** A destination that keeps each accepted connection's bytes, answers `reply` on the first, and closes when its peer does. */
function fakeDestination(reply?: Uint8Array) {
  const path = join(work, `dst-${seq++}.sock`);
  const got: Buffer[][] = [];
  const closed: Promise<void>[] = [];
  const server: Server = createServer({ allowHalfOpen: true }, (s: Socket) => {
    const mine: Buffer[] = [];
    got.push(mine);
    if (reply && got.length === 1) s.write(reply);
    s.on('data', (d: Buffer) => mine.push(d));
    closed.push(new Promise((r) => s.on('close', () => r())));
    s.on('end', () => s.end());
  });
  const listening = new Promise<void>((r) => server.listen(path, r));
  return { path, got, closed, server, listening };
}

function send(path: string, data: Uint8Array, piece: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const s = connect({ path, allowHalfOpen: true });
    const back: Buffer[] = [];
    s.on('data', (d: Buffer) => back.push(d));
    s.on('error', () => {}); // a reset is an outcome here: the caller checks the relay's
    s.on('close', () => resolve(Buffer.concat(back)));
    s.on('connect', () => {
      for (let at = 0; at < data.length; at += piece) s.write(data.subarray(at, at + piece));
      s.end();
    });
  });
}

async function relayTo(dst: { path: string; listening: Promise<void> }, record?: string) {
  await dst.listening;
  const listen = join(work, `relay-${seq++}.sock`);
  let ready!: () => void;
  const listening = new Promise<void>((r) => (ready = r));
  const relay = new Relay({
    listen: parseUri(`unix:${listen}`, 'l'),
    connect: parseUri(`unix:${dst.path}`, 'c'),
    transcode: {},
    once: true,
    record,
    onListening: ready,
  });
  await listening;
  return { relay, listen };
}

describe('relay (no QEMU)', () => {
  const stream = loadFixture('xbzrle-hit').stream;

  it("writes exactly what transcode writes, records exactly what arrived, returns the destination's bytes unchanged", async () => {
    const reply = new Uint8Array([0, 2, 0, 4, 0, 0, 0, 1, 0, 1, 0, 4, 0, 0, 0, 0]); // PONG 1, SHUT 0
    const dst = fakeDestination(reply);
    const rec = join(work, 'rec');
    const { relay, listen } = await relayTo(dst, rec);
    const back = await send(listen, stream, 7001);
    const result: RelayResult = await relay.done;
    expect(result.code).toBe(0);
    expect(Buffer.concat(dst.got[0]!).equals(Buffer.from(transcodeBytes(stream)))).toBe(true);
    expect(back.equals(Buffer.from(reply))).toBe(true);
    expect(readFileSync(join(rec, 'conn-0.s2d')).equals(stream)).toBe(true);
    expect(readFileSync(join(rec, 'conn-0.d2s')).equals(Buffer.from(reply))).toBe(true);
    // conn-0.timing: when the bytes arrived, counts increasing to the whole stream (for replay --pace recorded).
    const timing = readTiming(rec, 0)!;
    expect(timing.length).toBeGreaterThan(0);
    expect(timing.at(-1)![1]).toBe(stream.length);
    for (let i = 1; i < timing.length; i++) expect(timing[i]![0] >= timing[i - 1]![0] && timing[i]![1] > timing[i - 1]![1]).toBe(true);
    expect(result.connections).toMatchObject([{ n: 0, kind: 'main', s2dIn: stream.length, d2s: reply.length }]);
    dst.server.close();
  });

  it('keeps accept order for the channels beside the main one and copies them byte for byte', async () => {
    const dst = fakeDestination();
    const { relay, listen } = await relayTo(dst);
    const side = new Uint8Array(20000).map((_, i) => (i * 7) & 0xff);
    side.set([0, 0, 0, 0, 0, 0, 0, 0x08], 0); // a PAGE record header: a preempt channel
    const main = send(listen, stream, 65536);
    await new Promise((r) => setTimeout(r, 50));
    const other = send(listen, side, 999);
    await Promise.all([main, other]);
    const result = await relay.done;
    expect(result.code).toBe(0);
    expect(result.connections.map((c) => c.kind)).toEqual(['main', 'preempt']);
    expect(Buffer.concat(dst.got[1]!).equals(Buffer.from(side))).toBe(true);
    dst.server.close();
  });

  it('a malformed stream: exit 3 with a typed reason, both sides closed', async () => {
    const dst = fakeDestination();
    const { relay, listen } = await relayTo(dst);
    const bad = Buffer.from(stream.subarray(0, 300000));
    bad.fill(0xee, 200000);
    await send(listen, bad, 4096);
    const result = await relay.done;
    expect(result.code).toBe(3);
    // 0xee…: a page record whose offset is past its block; judged in QEMU's order (block, then offset)
    expect(result.reason).toMatch(/^bad stream on conn-0 \[BAD_OFFSET\] at byte 199999: Illegal RAM offset /);
    await Promise.all(dst.closed);
    dst.server.close();
  });

  it('CLI: SIGTERM closes both sides (exit 143, one line), --idle-timeout ends an idle relay (exit 1)', async () => {
    const dst = fakeDestination();
    await dst.listening;
    const run = (extra: string[]) => {
      const listen = join(work, `cli-${seq++}.sock`);
      const child = spawn(process.execPath, [CLI, 'relay', '--listen', `unix:${listen}`, '--connect', `unix:${dst.path}`, ...extra]);
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      const listening = new Promise<void>((r) => child.stderr.on('data', () => stderr.includes('listening') && r()));
      const exited = new Promise<[number | null, string]>((r) => child.on('exit', (c) => r([c, stderr])));
      return { child, listen, listening, exited };
    };
    const a = run([]);
    await a.listening;
    const s = connect({ path: a.listen });
    const sClosed = new Promise<void>((r) => s.on('close', () => r()));
    s.on('error', () => {});
    s.write(stream.subarray(0, 1000));
    await new Promise((r) => setTimeout(r, 200));
    a.child.kill('SIGTERM');
    const [code, err] = await a.exited;
    expect(code).toBe(143);
    expect(err.trim().split('\n').slice(1)).toEqual(['migstream relay: stopped by SIGTERM']);
    await sClosed;
    await Promise.all(dst.closed);

    const b = run(['--idle-timeout', '0.3']);
    const [bcode, berr] = await b.exited;
    expect(bcode).toBe(1);
    expect(berr).toMatch(/migstream relay: idle for 0.3 s\n$/);
    dst.server.close();
  });
});

describe('replay --pace', () => {
  /** A destination that notes when each byte count arrived (ms after `t0`). */
  function timedDestination() {
    const d = fakeDestination();
    const arrivals: [ms: number, bytes: number][] = [];
    let t0 = 0;
    let total = 0;
    d.server.on('connection', (s: Socket) => s.on('data', (b: Buffer) => arrivals.push([performance.now() - t0, (total += b.length)])));
    return { ...d, arrivals, start: () => (t0 = performance.now()) };
  }
  const body = new Uint8Array(300 << 10).map((_, i) => (i * 13) & 0xff);
  body.set([0x51, 0x45, 0x56, 0x4d]); // QEVM: the main channel
  // At 0 ms the first 100 KiB arrived, at 300 ms 200 KiB, at 600 ms the rest.
  const schedule: [number, number][] = [
    [0, 100 << 10],
    [300, 200 << 10],
    [600, 300 << 10],
  ];
  /** The earliest time the replay may have delivered `bytes`. */
  const dueAt = (bytes: number) => schedule.find(([, b]) => b >= bytes)![0];

  it('recorded: no byte reaches the destination before the time it reached the relay, and all of them arrive', async () => {
    const rec = join(work, 'paced');
    mkdirSync(rec);
    writeFileSync(join(rec, 'conn-0.s2d'), body);
    writeFileSync(join(rec, 'conn-0.d2s'), new Uint8Array(0));
    writeFileSync(join(rec, 'conn-0.timing'), schedule.map(([ms, b]) => `${ms} ${b}\n`).join(''));
    const dst = timedDestination();
    await dst.listening;
    dst.start();
    const r = await replayRecording(rec, parseUri(`unix:${dst.path}`, 'c'), { kind: 'recorded' });
    await Promise.all(dst.closed);
    expect(Buffer.concat(dst.got[0]!).equals(body)).toBe(true);
    expect(r.connections).toEqual([{ n: 0, kind: 'main', sent: body.length, received: 0 }]);
    for (const [ms, bytes] of dst.arrivals) expect(ms).toBeGreaterThanOrEqual(dueAt(bytes) - 2);
    expect(r.elapsedMs).toBeGreaterThanOrEqual(598);
    // Without timing, --pace recorded says so.
    rmSync(join(rec, 'conn-0.timing'));
    await expect(replayRecording(rec, parseUri(`unix:${dst.path}`, 'c'), { kind: 'recorded' })).rejects.toThrow(/no conn-0.timing/);
    dst.server.close();
  });

  it('RATE: the destination never has more than RATE × elapsed (+ one 16 KiB piece), and all of it', async () => {
    const rec = join(work, 'paced-rate');
    mkdirSync(rec);
    writeFileSync(join(rec, 'conn-0.s2d'), body);
    const dst = timedDestination();
    await dst.listening;
    dst.start();
    const rate = 1 << 20;
    const r = await replayRecording(rec, parseUri(`unix:${dst.path}`, 'c'), { kind: 'rate', bytesPerSecond: rate });
    await Promise.all(dst.closed);
    expect(Buffer.concat(dst.got[0]!).equals(body)).toBe(true);
    for (const [ms, bytes] of dst.arrivals) expect(bytes).toBeLessThanOrEqual((rate * (ms + 2)) / 1000 + (16 << 10));
    expect(r.elapsedMs).toBeGreaterThanOrEqual((body.length / rate) * 1000 - 2);
    dst.server.close();
  });

  it('CLI: --pace takes "recorded" or a rate', () => {
    for (const bad of ['fast', '0']) {
      const child = spawnSync(process.execPath, [CLI, 'replay', work, '--connect', 'unix:/nonexistent', '--pace', bad], { encoding: 'utf8' });
      expect([child.status, child.stderr]).toEqual([2, expect.stringMatching(/--pace/)]);
    }
  });
});

describe('relay --workers', () => {
  it('writes the same bytes as the inline relay (transcode --compress lz4), compressing on the pool', async () => {
    const stream = loadFixture('xbzrle-hit').stream;
    const dst = fakeDestination();
    await dst.listening;
    const listen = join(work, `relay-${seq++}.sock`);
    let ready!: () => void;
    const listening = new Promise<void>((r) => (ready = r));
    const relay = new Relay({
      listen: parseUri(`unix:${listen}`, 'l'),
      connect: parseUri(`unix:${dst.path}`, 'c'),
      transcode: { compress: { codec: 'lz4' } },
      workers: 2,
      once: true,
      onListening: ready,
    });
    await listening;
    await send(listen, stream, 3001);
    const result = await relay.done;
    expect(result.code).toBe(0);
    expect(Buffer.concat(dst.got[0]!).equals(Buffer.from(transcodeBytes(stream, { compress: { codec: 'lz4' } })))).toBe(true);
    dst.server.close();
  });

  it('after the switch to inline (POSTCOPY_LISTEN) a page is written at once, after every record the pool still held', async () => {
    const out: Uint8Array[] = [];
    const sink = (c: Uint8Array) => void out.push(c.slice());
    // A pool whose every batch takes 20 event-loop turns: bulk pages sit in its queue.
    const w = new PoolThenInline(sink, new InlinePool(runTask, () => 20), { compress: { codec: 'lz4' } }, (e) => {
      throw e;
    });
    const bulk = (i: number) => new Uint8Array(4096).map((_, j) => (i * 31 + j * 7) & 0xff);
    w.header();
    w.manifest(encodeManifest(extensionsFor(resolveSpecs({ compress: { codec: 'lz4' } }).spec, 4096)));
    w.sectionStart({ sectionId: 2, idstr: 'ram', instanceId: 0, versionId: 4 });
    w.memSize([{ idstr: 'pc.ram', length: 64 * 4096 }]);
    for (let i = 0; i < 40; i++) w.compressPage('pc.ram', i * 4096, bulk(i));
    w.flush();
    const switched = w.toInline();
    const urgent = new Uint8Array(4096).fill(0x5a);
    w.page('pc.ram', 63 * 4096, urgent);
    w.flush();
    // Held until the pool's records are out: nothing overtakes them.
    const before = Buffer.concat(out).length;
    await switched;
    const all = Buffer.concat(out);
    expect(all.length).toBeGreaterThan(before);
    expect(all.subarray(all.length - 4096).equals(urgent)).toBe(true);
    // From now on a page goes to the sink in the same call, no pool in between.
    const n = out.length;
    w.page('pc.ram', 62 * 4096, urgent);
    w.flush();
    expect(out.length).toBe(n + 1);
    w.ramEos();
    w.footer(2);
    w.raw(new Uint8Array([0]));
    await w.finish();
    // The records decode to the pages given, in order.
    const pages: number[] = [];
    decodeAll(Buffer.concat(out), (ev) => {
      if (ev.type === 'page') pages.push(ev.offset / 4096);
    });
    expect(pages).toEqual([...Array.from({ length: 40 }, (_, i) => i), 63, 62]);
  });
});
