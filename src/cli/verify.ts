import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { DiskImage } from '../stream/disk-image.js';
import type { RamBlockInfo } from '../stream/events.js';
import { AutoRamStore, decodeFile, diskFileName, ramBlockFileName } from '../stream/files.js';
import { VerifyingRamStore } from '../stream/digest.js';
import { decodeOptions, table } from './io.js';

export interface VerifyEntry {
  kind: 'ramblock' | 'disk';
  name: string;
  file: string;
  status: 'equal' | 'different' | 'missing';
  /** Byte offset of the first differing page (RAM) or 512-byte sector (disk). */
  firstDifference?: number;
  /** Pages (RAM) or sectors (disks) that differ. */
  differing?: number;
}

/**
 * Decodes STREAM and compares every RAMBlock and disk with the files `extract`
 * would write into DIR. A disk file may be shorter than the last 1 MiB chunk
 * (QEMU pads it): only the file's length is compared.
 */
export async function verifyStream(path: string, dir: string, strict = false): Promise<VerifyEntry[]> {
  const ram = new VerifyingRamStore(new AutoRamStore()); // a stream with iteration digests has them checked as it decodes
  const disks = new DiskImage();
  const blocks: RamBlockInfo[] = [];
  const out: VerifyEntry[] = [];
  try {
    await decodeFile(
      path,
      (ev) => {
        ram.handle(ev);
        if (ev.type === 'ram-blocks') blocks.splice(0, blocks.length, ...ev.blocks);
        else if (ev.type === 'block-chunk') disks.chunk(ev);
      },
      decodeOptions(strict),
    );
    for (const b of blocks) {
      const file = `${dir}/${ramBlockFileName(b.idstr)}`;
      out.push(compare('ramblock', b.idstr, file, b.length, 4096, (start, buf) => ram.read(b.idstr, start, buf)));
    }
  } finally {
    ram.close();
  }
  for (const device of disks.devices.keys()) {
    const file = `${dir}/${diskFileName(device)}`;
    const size = existsSync(file) ? statSync(file).size : disks.extent(device);
    out.push(compare('disk', device, file, size, 512, (start, buf) => disks.read(device, start, buf)));
  }
  return out;
}

function compare(
  kind: VerifyEntry['kind'],
  name: string,
  file: string,
  length: number,
  unit: number,
  fill: (start: number, buf: Uint8Array) => void,
): VerifyEntry {
  if (!existsSync(file)) return { kind, name, file, status: 'missing' };
  const fd = openSync(file, 'r');
  try {
    const span = 1 << 20;
    const mine = new Uint8Array(span);
    const theirs = new Uint8Array(span);
    let first: number | undefined;
    let differing = 0;
    const fileSize = statSync(file).size;
    for (let at = 0; at < Math.max(length, fileSize); at += span) {
      const n = Math.min(span, Math.max(length, fileSize) - at);
      const a = mine.subarray(0, n);
      const b = theirs.subarray(0, n);
      a.fill(0);
      if (at < length) fill(at, a.subarray(0, Math.min(n, length - at)));
      b.fill(0);
      readSync(fd, b, 0, n, at);
      for (let u = 0; u < n; u += unit) {
        if (Buffer.compare(a.subarray(u, u + unit), b.subarray(u, u + unit)) !== 0) {
          first ??= at + u;
          differing++;
        }
      }
    }
    if (fileSize !== length) first ??= Math.min(fileSize, length); // sizes differ: the shorter end is a difference
    return first === undefined
      ? { kind, name, file, status: 'equal' }
      : { kind, name, file, status: 'different', firstDifference: first, differing: Math.max(differing, 1) };
  } finally {
    closeSync(fd);
  }
}

export async function runVerify(path: string, dir: string, json: boolean, strict = false): Promise<number> {
  const entries = await verifyStream(path, dir, strict);
  if (json) process.stdout.write(`${JSON.stringify(entries, null, 2)}\n`);
  else {
    process.stdout.write(
      `${table([
        ['kind', 'name', 'status', 'first difference', 'differing units'],
        ...entries.map((e) => [e.kind, e.name, e.status, e.firstDifference === undefined ? '' : `0x${e.firstDifference.toString(16)}`, e.differing ?? '']),
      ])}\n`,
    );
  }
  return entries.every((e) => e.status === 'equal') ? 0 : 1;
}
