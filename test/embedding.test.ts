import { createServer, connect, type Server } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadFixture } from '../fixtures/qemu/lib.mjs';
import { transcodeBytes } from '../src/stream/transcode.js';
import { requireBuiltCli } from './support/cli.js';
import { sameBytes } from './support/build.js';

requireBuiltCli(); // the proxy imports 'migstream', which resolves to dist/
const root = join(import.meta.dirname, '..');
const work = mkdtempSync(join(root, '.embedding-run-')); // inside the package: 'migstream' resolves to it
afterAll(() => rmSync(work, { recursive: true, force: true }));

const doc = readFileSync(join(root, 'docs', 'embedding.md'), 'utf8');
const proxyCode = /## A migration proxy over `node:net`[\s\S]*?```js\n([\s\S]*?)```/.exec(doc)![1]!;

/** A TCP server that collects what one client sends. */
function sinkServer(): Promise<{ server: Server; port: number; received: Promise<Uint8Array> }> {
  return new Promise((resolve) => {
    let done!: (b: Uint8Array) => void;
    const received = new Promise<Uint8Array>((r) => (done = r));
    const server = createServer((socket) => {
      const parts: Buffer[] = [];
      socket.on('data', (d: Buffer) => parts.push(d));
      socket.on('end', () => done(new Uint8Array(Buffer.concat(parts))));
    });
    server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as { port: number }).port, received }));
  });
}

describe('docs/embedding.md', () => {
  it('the proxy is about 30 lines', () => {
    const lines = proxyCode
      .trim()
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.trim().startsWith('//'));
    expect(lines.length).toBeLessThanOrEqual(32);
  });

  it('two proxies (XBZRLE + LZ4 on 2 workers, then back to QEMU records) carry a real QEMU stream over TCP: the bytes transcodeBytes gives', async () => {
    const file = join(work, 'proxy.mjs');
    writeFileSync(file, proxyCode);
    const { startProxy } = (await import(/* @vite-ignore */ file)) as { startProxy(port: number, target: object, options: object): Promise<Server> };
    const fx = loadFixture('xbzrle-hit');
    const dest = await sinkServer();
    const options = { xbzrle: { cacheBytes: 4 << 20 }, compress: { codec: 'lz4' } };
    const back = await startProxy(0, { host: '127.0.0.1', port: dest.port }, { workers: 2 });
    const backPort = (back.address() as { port: number }).port;
    const there = await startProxy(0, { host: '127.0.0.1', port: backPort }, { ...options, workers: 2 });
    const therePort = (there.address() as { port: number }).port;
    const source = connect({ host: '127.0.0.1', port: therePort });
    for (let at = 0; at < fx.stream.length; at += 100_000) {
      if (!source.write(fx.stream.subarray(at, at + 100_000))) await new Promise((r) => source.once('drain', r));
    }
    source.end();
    const got = await dest.received;
    expect(sameBytes(got, transcodeBytes(transcodeBytes(fx.stream, options)))).toBe(true);
    there.close();
    back.close();
    dest.server.close();
  }, 120_000);
});
