import { createReadStream } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { mainConnection, readRecording } from './recording.js';
import { formatUri, netOptions, type SocketAddress } from './uri.js';

export interface ReplayResult {
  connections: { n: number; kind: string; sent: number; received: number }[];
}

/**
 * Plays a recording's source→destination bytes into a destination, one
 * connection per recorded one, opened in recorded order; what the
 * destination answers is read and dropped. Resolves once every connection
 * is closed; rejects when one cannot connect or the destination resets it.
 */
export async function replayRecording(dir: string, target: SocketAddress): Promise<ReplayResult> {
  const conns = readRecording(dir);
  mainConnection(conns, dir);
  const sockets: Socket[] = [];
  const done: Promise<{ n: number; kind: string; sent: number; received: number }>[] = [];
  try {
    for (const c of conns) {
      const sock = await open(target);
      sockets.push(sock);
      done.push(
        new Promise((resolve, reject) => {
          let received = 0;
          let sent = 0;
          sock.on('data', (d: Buffer) => (received += d.length));
          sock.on('error', (e) => reject(new Error(`replay conn-${c.n} to ${formatUri(target)}: ${e.message}`)));
          sock.on('close', () => resolve({ n: c.n, kind: c.kind, sent, received }));
          const input = createReadStream(c.s2d);
          input.on('data', (b) => (sent += b.length));
          input.on('error', (e) => reject(e));
          input.pipe(sock);
        }),
      );
    }
    return { connections: await Promise.all(done) };
  } finally {
    for (const s of sockets) s.destroy();
  }
}

function open(target: SocketAddress): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ ...netOptions(target), allowHalfOpen: true });
    s.once('connect', () => resolve(s));
    s.once('error', (e) => reject(new Error(`cannot connect to ${formatUri(target)}: ${e.message}`)));
  });
}
