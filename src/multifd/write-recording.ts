import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { decodeFile } from '../stream/files.js';
import type { DecoderOptions } from '../stream/decoder-options.js';
import './node-zlib.js';
import './node-zstd.js';
import { MultifdSplitter, type SplitOptions } from './split.js';

export interface SplitResult {
  mainBytes: number;
  channels: { pages: number; packets: number; wireBytes: number }[];
}

/**
 * Writes a stream (any STREAM decodeFile reads, a multifd one included) as a
 * multifd recording directory: conn-0.s2d the main channel, conn-1..N.s2d the
 * channels 0..N-1 (with empty conn-N.d2s), which `migstream replay` plays into
 * a destination with the multifd capability and the same channel count.
 */
export async function splitToRecording(input: string, dir: string, options: SplitOptions, decode: DecoderOptions = {}): Promise<SplitResult> {
  mkdirSync(dir, { recursive: true });
  const fds = Array.from({ length: options.channels + 1 }, (_, n) => {
    writeFileSync(join(dir, `conn-${n}.d2s`), '');
    return openSync(join(dir, `conn-${n}.s2d`), 'w');
  });
  let mainBytes = 0;
  const write = (fd: number, b: Uint8Array) => {
    for (let at = 0; at < b.length; ) at += writeSync(fd, b, at, b.length - at);
  };
  try {
    const s = new MultifdSplitter(
      (b) => {
        mainBytes += b.length;
        write(fds[0]!, b);
      },
      (i, b) => write(fds[i + 1]!, b),
      options,
    );
    await decodeFile(input, s.handle, decode);
    return { mainBytes, channels: s.counts };
  } finally {
    for (const fd of fds) closeSync(fd);
  }
}
