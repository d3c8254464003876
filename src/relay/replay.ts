import { createReadStream } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { mainConnection, readRecording, readTiming, type RecordedConnection } from './recording.js';
import { formatUri, netOptions, type SocketAddress } from './uri.js';

/** How fast to play: as the bytes arrived when recorded (`conn-N.timing`), or at most this many bytes per second per connection. */
export type ReplayPace = { kind: 'recorded' } | { kind: 'rate'; bytesPerSecond: number };

export interface ReplayResult {
  connections: { n: number; kind: string; sent: number; received: number }[];
  /** ms from the first connection opened to the last one closed. */
  elapsedMs: number;
}

/**
 * Plays a recording's source→destination bytes into a destination, one
 * connection per recorded one, opened in recorded order; what the
 * destination answers is read and dropped. Without `pace` as fast as the
 * destination reads. Resolves once every connection is closed; rejects when
 * one cannot connect or the destination resets it.
 */
export async function replayRecording(dir: string, target: SocketAddress, pace?: ReplayPace): Promise<ReplayResult> {
  const conns = readRecording(dir);
  mainConnection(conns, dir);
  const schedules = conns.map((c) => schedule(dir, c, pace));
  const sockets: Socket[] = [];
  const done: Promise<{ n: number; kind: string; sent: number; received: number }>[] = [];
  const t0 = performance.now();
  try {
    for (const [i, c] of conns.entries()) {
      const sock = await open(target);
      sockets.push(sock);
      done.push(
        new Promise((resolve, reject) => {
          let received = 0;
          let sent = 0;
          sock.on('data', (d: Buffer) => (received += d.length));
          sock.on('error', (e) => reject(new Error(`replay conn-${c.n} to ${formatUri(target)}: ${e.message}`)));
          sock.on('close', () => resolve({ n: c.n, kind: c.kind, sent, received }));
          const due = schedules[i];
          if (!due) {
            const input = createReadStream(c.s2d);
            input.on('data', (b) => (sent += b.length));
            input.on('error', (e) => reject(e));
            input.pipe(sock);
            return;
          }
          sendPaced(sock, c.s2d, due, t0, (n) => (sent += n)).catch(reject);
        }),
      );
    }
    const connections = await Promise.all(done);
    return { connections, elapsedMs: performance.now() - t0 };
  } finally {
    for (const s of sockets) s.destroy();
  }
}

/**
 * When each byte may go, as a function from a byte count to ms after the
 * replay's start (the byte that makes the count may not go earlier), and the
 * counts at which to cut the bytes into pieces; undefined: unpaced.
 */
interface Schedule {
  dueMs(bytes: number): number;
  /** Piece ends, increasing: the recorded chunk ends, or every 16 KiB for a rate. */
  nextCut(after: number): number;
}

const RATE_PIECE = 16 << 10;

function schedule(dir: string, c: RecordedConnection, pace: ReplayPace | undefined): Schedule | undefined {
  if (!pace) return undefined;
  if (pace.kind === 'rate') {
    const r = pace.bytesPerSecond;
    return { dueMs: (bytes) => (bytes / r) * 1000, nextCut: (after) => (Math.floor(after / RATE_PIECE) + 1) * RATE_PIECE };
  }
  const t = readTiming(dir, c.n);
  if (!t)
    throw new Error(`${dir}: conn-${c.n} has no conn-${c.n}.timing (recorded before relays kept timing): replay it without --pace recorded, or --pace RATE`);
  // The piece ending at or past `bytes` in the recording: its arrival time.
  const find = (bytes: number) => {
    let lo = 0;
    let hi = t.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (t[mid]![1] < bytes) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  return {
    dueMs: (bytes) => (t.length === 0 ? 0 : t[find(bytes)]![0]),
    nextCut: (after) => {
      const i = t.length === 0 ? -1 : find(after + 1);
      return i < 0 || t[i]![1] <= after ? Number.POSITIVE_INFINITY : t[i]![1];
    },
  };
}

async function sendPaced(sock: Socket, path: string, s: Schedule, t0: number, sent: (n: number) => void): Promise<void> {
  let at = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    let from = 0;
    while (from < chunk.length) {
      const end = Math.min(chunk.length, s.nextCut(at) - at + from);
      const piece = chunk.subarray(from, end);
      const wait = t0 + s.dueMs(at + piece.length) - performance.now();
      if (wait > 1) await sleep(wait);
      if (sock.destroyed) return;
      const ok = sock.write(piece);
      at += piece.length;
      sent(piece.length);
      from = end;
      if (!ok) await new Promise<void>((r) => sock.once('drain', r).once('close', r));
    }
  }
  sock.end();
}

function open(target: SocketAddress): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ ...netOptions(target), allowHalfOpen: true });
    s.once('connect', () => resolve(s));
    s.once('error', (e) => reject(new Error(`cannot connect to ${formatUri(target)}: ${e.message}`)));
  });
}
