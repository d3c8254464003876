import { closeSync, openSync, writeSync } from 'node:fs';
import { OutputClosedError } from '../codec/errors.js';
import type { StreamWarning } from '../stream/events.js';

export class UsageError extends Error {}

/** How every command reports a decoder warning (a damaged vmdesc trailer QEMU would load through). */
export function printWarning(w: StreamWarning): void {
  process.stderr.write(`migstream: warning [${w.code}] at byte ${w.offset}: ${w.message}\n`);
}

/** The decoder options of a command: `--strict` makes trailer damage an error, otherwise it is printed. */
export function decodeOptions(strict: boolean): { strict: boolean; onWarning: (w: StreamWarning) => void } {
  return { strict, onWarning: printWarning };
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * Backs off on a full non-blocking pipe: 50 µs, doubling to 2 ms. A fixed
 * 2 ms sleep per EAGAIN capped a fast reader at one pipe buffer per 2 ms
 * (64 KiB: 32 MB/s); the reader usually drains a pipe in microseconds.
 */
export function waitWritable(attempt: number): void {
  Atomics.wait(sleeper, 0, 0, Math.min(2, 0.05 * 2 ** attempt));
}

/** A synchronous byte sink on a file or stdout ("-"); retries short writes and EAGAIN. */
export class OutputFile {
  private readonly fd: number;
  private readonly owned: boolean;
  private readonly name: string;
  bytes = 0;

  constructor(path: string) {
    this.owned = path !== '-';
    this.name = path === '-' ? 'stdout' : path;
    this.fd = this.owned ? openSync(path, 'w') : 1;
  }

  write = (chunk: Uint8Array): void => {
    let at = 0;
    let wait = 0;
    while (at < chunk.length) {
      try {
        at += writeSync(this.fd, chunk, at, chunk.length - at);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EPIPE') throw new OutputClosedError(this.name, `EPIPE after ${this.bytes + at} bytes`);
        if (code !== 'EAGAIN') throw e;
        waitWritable(wait++);
        continue;
      }
      wait = 0;
    }
    this.bytes += chunk.length;
  };

  close(): void {
    if (this.owned) closeSync(this.fd);
  }
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function formatBytes(n: number): string {
  let v = n;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(v >= 100 || Number.isInteger(v) ? 0 : 1)} ${UNITS[u]}`;
}

/** Left-aligned first column, right-aligned rest. */
export function table(rows: (string | number)[][]): string {
  const cells = rows.map((r) => r.map(String));
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells
    .map((r) =>
      r
        .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** "65536", "64K", "64KiB", "16M", "1GiB" → bytes. */
export function parseSize(text: string, flag: string): number {
  const m = /^(\d+)\s*([KMGT]?)(i?B)?$/i.exec(text.trim());
  if (!m) throw new UsageError(`${flag}: expected a size such as 65536, 64KiB or 16MiB, got "${text}"`);
  const unit = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G' | 'T'];
  return Number(m[1]) * unit;
}
