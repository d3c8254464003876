import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/** One connection of a recording: what the source sent (s2d) and the destination answered (d2s). */
export interface RecordedConnection {
  n: number;
  /** "main": starts with QEVM; "preempt": bare RAM records (postcopy-preempt); "other": anything else (multifd, empty). */
  kind: 'main' | 'preempt' | 'other';
  s2d: string;
  d2s: string;
}

export interface RecordingIndexEntry {
  n: number;
  kind?: RecordedConnection['kind'];
  acceptedAt: string;
  closedAt?: string;
  s2dBytes: number;
  d2sBytes: number;
}

/**
 * Writes `DIR/conn-N.s2d`, `DIR/conn-N.d2s` as bytes arrive (synchronous
 * appends: a crash still leaves what was seen) and `DIR/index.json`, which
 * readers never need: the conn-N files alone describe the recording.
 * `DIR/conn-N.timing` says when the source's bytes arrived, for `replay
 * --pace recorded`: one line per chunk, "MS BYTES", ms since the first
 * connection was accepted and the connection's s2d bytes so far.
 */
export class RecordingWriter {
  private readonly fds = new Map<string, number>();
  private readonly entries: RecordingIndexEntry[] = [];
  private started: number | undefined;

  constructor(
    readonly dir: string,
    private readonly meta: Record<string, unknown>,
  ) {
    mkdirSync(dir, { recursive: true });
  }

  open(n: number): RecordingIndexEntry {
    this.started ??= performance.now();
    for (const d of ['s2d', 'd2s', 'timing']) this.fds.set(`${n}.${d}`, openSync(join(this.dir, `conn-${n}.${d}`), 'w'));
    const entry: RecordingIndexEntry = { n, acceptedAt: new Date().toISOString(), s2dBytes: 0, d2sBytes: 0 };
    this.entries.push(entry);
    this.writeIndex();
    return entry;
  }

  write(entry: RecordingIndexEntry, dir: 's2d' | 'd2s', chunk: Uint8Array): void {
    const fd = this.fds.get(`${entry.n}.${dir}`);
    if (fd === undefined) return;
    for (let at = 0; at < chunk.length; ) at += writeSync(fd, chunk, at, chunk.length - at);
    if (dir === 's2d') {
      entry.s2dBytes += chunk.length;
      const t = this.fds.get(`${entry.n}.timing`);
      if (t !== undefined) writeSync(t, `${(performance.now() - this.started!).toFixed(1)} ${entry.s2dBytes}\n`);
    } else entry.d2sBytes += chunk.length;
  }

  close(entry: RecordingIndexEntry): void {
    for (const d of ['s2d', 'd2s', 'timing']) {
      const key = `${entry.n}.${d}`;
      const fd = this.fds.get(key);
      if (fd !== undefined) closeSync(fd);
      this.fds.delete(key);
    }
    entry.closedAt = new Date().toISOString();
    this.writeIndex();
  }

  closeAll(): void {
    for (const e of this.entries) if (!e.closedAt) this.close(e);
  }

  private writeIndex(): void {
    const tmp = join(this.dir, '.index.json.tmp');
    writeFileSync(tmp, `${JSON.stringify({ format: 'migstream-recording', version: 1, ...this.meta, connections: this.entries }, null, 2)}\n`);
    renameSync(tmp, join(this.dir, 'index.json'));
  }
}

export function isRecordingDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** The connections of a recording directory, in accept order, from the conn-N files alone. */
export function readRecording(dir: string): RecordedConnection[] {
  const ns = new Set<number>();
  for (const name of readdirSync(dir)) {
    const m = /^conn-(\d+)\.(s2d|d2s)$/.exec(name);
    if (m) ns.add(Number(m[1]));
  }
  return [...ns]
    .sort((a, b) => a - b)
    .map((n) => {
      const s2d = join(dir, `conn-${n}.s2d`);
      const d2s = join(dir, `conn-${n}.d2s`);
      return { n, kind: classify(firstBytes(s2d)), s2d, d2s };
    });
}

/** The recording's main channel: the first connection starting with QEVM. */
export function mainConnection(conns: RecordedConnection[], dir: string): RecordedConnection {
  const main = conns.find((c) => c.kind === 'main');
  if (!main) throw new Error(`${dir}: no conn-N.s2d starting with "QEVM" (not a recording of a migration)`);
  return main;
}

/**
 * A connection's `conn-N.timing` (see RecordingWriter): [ms, bytes so far]
 * per chunk, in order; undefined when the recording has none.
 */
export function readTiming(dir: string, n: number): [ms: number, bytes: number][] | undefined {
  let text: string;
  try {
    text = readFileSync(join(dir, `conn-${n}.timing`), 'utf8');
  } catch {
    return undefined;
  }
  const out: [number, number][] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const m = /^(\d+(?:\.\d+)?) (\d+)$/.exec(line);
    if (!m) throw new Error(`${join(dir, `conn-${n}.timing`)}: expected "MS BYTES" lines, found "${line.slice(0, 40)}"`);
    out.push([Number(m[1]), Number(m[2])]);
  }
  return out;
}

const QEVM = [0x51, 0x45, 0x56, 0x4d];

/** What a connection is from its first bytes (undefined: not enough of them yet). */
export function classify(head: Uint8Array): RecordedConnection['kind'] {
  if (head.length >= 4 && QEVM.every((b, i) => head[i] === b)) return 'main';
  // A RAM record header: be64 offset|flags with a ZERO, PAGE or EOS flag in the low bits.
  if (head.length >= 8 && head[7]! & 0x1a) return 'preempt';
  return 'other';
}

function firstBytes(path: string): Uint8Array {
  try {
    const fd = openSync(path, 'r');
    try {
      const buf = new Uint8Array(8);
      return buf.subarray(0, readSync(fd, buf, 0, buf.length, 0));
    } finally {
      closeSync(fd);
    }
  } catch {
    return new Uint8Array(0);
  }
}
