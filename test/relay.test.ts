import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadFixture } from '../fixtures/qemu/lib.mjs';
import { Relay, type RelayResult } from '../src/relay/relay.js';
import { parseUri } from '../src/relay/uri.js';
import { transcodeBytes } from '../src/stream/transcode.js';
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
