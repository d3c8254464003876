// Wire efficiency of multifd channels: QEMU 7.2's own multifd zlib/zstd (the committed recordings of
// fixtures/multifd) against migstream's re-encoding of the very same packets (what `relay
// --multifd-compression` sends between two relays). Same pages, same packet boundaries, side by side.
// Usage: npm run build && node bench/multifd-wire.mjs [--json FILE]
// SPDX-License-Identifier: MIT
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import '../dist/node/install.js';
import { MultifdRecoder } from '../dist/multifd/recode.js';
import { inspectMultifd } from '../dist/multifd/inspect.js';
import { unpackFixture } from '../fixtures/multifd/lib.mjs';

const SETTINGS = [
  { name: 'zlib-1', compression: 'zlib', level: 1 },
  { name: 'zlib-6', compression: 'zlib', level: 6 },
  { name: 'zlib-9', compression: 'zlib', level: 9 },
  { name: 'zstd-1', compression: 'zstd', level: 1 },
  { name: 'zstd-3', compression: 'zstd', level: 3 },
  { name: 'zstd-9', compression: 'zstd', level: 9 },
  { name: 'zstd-15', compression: 'zstd', level: 15 },
  { name: 'brotli-3', compression: 'brotli', level: 3 },
  { name: 'brotli-5', compression: 'brotli', level: 5 },
  { name: 'brotli-9', compression: 'brotli', level: 9 },
];
const work = mkdtempSync(join(tmpdir(), 'migstream-multifd-bench-'));
const rows = [];
try {
  for (const fixture of ['zlib-4', 'zstd-2', 'zstd-4']) {
    const f = unpackFixture(fixture, join(work, fixture));
    const m = await inspectMultifd(f.rec);
    const channels = readdirSync(f.rec)
      .filter((x) => /^conn-[1-9]\d*\.s2d$/.test(x))
      .map((x) => readFileSync(join(f.rec, x)));
    const qemuWire = channels.reduce((n, c) => n + c.length, 0);
    const raw = m.pages * 4096;
    rows.push({ fixture, setting: `QEMU ${fixture.split('-')[0]}-1 (recorded)`, wire: qemuWire, ratio: raw / qemuWire, mbps: f.source.ram.mbps / 8 });
    for (const s of SETTINGS) {
      let wire = 0;
      const t0 = performance.now();
      for (const bytes of channels) {
        const r = new MultifdRecoder(s, (c) => (wire += c.length));
        for (let at = 0; at < bytes.length; at += 65536) r.push(bytes.subarray(at, at + 65536));
        r.end();
      }
      const s_ = (performance.now() - t0) / 1000;
      // recode = inflate QEMU's stream + deflate ours: an upper bound on our encode time
      rows.push({ fixture, setting: `migstream ${s.name}`, wire, ratio: raw / wire, mbps: raw / s_ / 2 ** 20 });
    }
    rows.push({ fixture, setting: 'uncompressed (multifd-bytes)', wire: m.multifdBytes, ratio: raw / m.multifdBytes });
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
const pad = (s, n) => String(s).padStart(n);
console.log(`${'fixture'.padEnd(8)} ${'setting'.padEnd(30)} ${pad('wire bytes', 11)} ${pad('ratio', 7)} ${pad('MiB/s', 8)}`);
for (const r of rows)
  console.log(
    `${r.fixture.padEnd(8)} ${r.setting.padEnd(30)} ${pad(r.wire, 11)} ${pad(r.ratio.toFixed(2), 7)} ${pad(r.mbps === undefined ? '' : r.mbps.toFixed(1), 8)}`,
  );
const i = process.argv.indexOf('--json');
if (i > 0) writeFileSync(process.argv[i + 1], `${JSON.stringify(rows, null, 2)}\n`);
