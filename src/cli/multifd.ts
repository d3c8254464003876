import { splitToRecording } from '../multifd/write-recording.js';
import type { MultifdCompression } from '../multifd/format.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runEncode, type EncodeCommand } from './commands.js';
import { UsageError } from './io.js';
import type { MultifdRelayOptions } from '../multifd/recode.js';

export const MULTIFD_USAGE = `  transcode IN OUTDIR --multifd N [--multifd-compression none|zlib|zstd|brotli|zstd-dedup] [--multifd-level L]
                                               QEMU 7.2 multifd form: OUTDIR/conn-0.s2d the main channel (zero pages),
                                               conn-1..N.s2d channels 0..N-1 (every other page, packets of 128 pages,
                                               one compression stream per channel); \`replay OUTDIR\` plays it into a
                                               destination with multifd, multifd-channels N and the same compression.
                                               (encode … --out DIR --multifd N … writes the same form);
                                               IN may be a multifd recording (or --channel FILEs): transcode without
                                               --multifd turns one back into a single plain stream`;

/** encode … --out DIR --multifd N: the single stream encode writes, then split into QEMU's multifd form in DIR. */
export async function runEncodeMultifd(cmd: EncodeCommand, v: Record<string, unknown>): Promise<number> {
  const tmp = mkdtempSync(join(tmpdir(), 'migstream-encode-'));
  try {
    const single = join(tmp, 'stream');
    const code = await runEncode({ ...cmd, out: single });
    if (code !== 0) return code;
    return await runMultifdSplit(single, cmd.out, v);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

export const MULTIFD_FLAGS = {
  multifd: { type: 'string' },
  'multifd-compression': { type: 'string' },
  'multifd-level': { type: 'string' },
} as const;

function compressionOf(v: Record<string, unknown>): { compression: MultifdCompression; level: number } {
  const compression = (v['multifd-compression'] ?? 'none') as MultifdCompression;
  if (!['none', 'zlib', 'zstd', 'brotli', 'zstd-dedup'].includes(compression))
    throw new UsageError('--multifd-compression is none, zlib, zstd, brotli or zstd-dedup');
  const max = compression === 'brotli' ? 11 : compression.startsWith('zstd') ? 19 : 9;
  const level = v['multifd-level'] === undefined ? (compression === 'brotli' ? 5 : 1) : Number(v['multifd-level']);
  if (!Number.isInteger(level) || level < 0 || level > max) throw new UsageError(`--multifd-level is 0..${max} for ${compression}`);
  return { compression, level };
}

/** relay --multifd-compression C [--multifd-level L] [--multifd-long]: re-encode multifd channels (absent: copy them). */
export function multifdRelayOption(v: Record<string, unknown>): MultifdRelayOptions | undefined {
  if (v['multifd-compression'] === undefined) {
    if (v['multifd-level'] !== undefined) throw new UsageError('--multifd-level needs --multifd-compression');
    if (v['multifd-long']) throw new UsageError('--multifd-long needs --multifd-compression zstd or zstd-dedup');
    return undefined;
  }
  const o = compressionOf(v);
  if (!v['multifd-long']) return o;
  if (!o.compression.startsWith('zstd')) throw new UsageError('--multifd-long needs --multifd-compression zstd or zstd-dedup');
  return { ...o, long: true };
}

export async function runMultifdSplit(input: string, out: string, v: Record<string, unknown>): Promise<number> {
  const channels = Number(v.multifd);
  if (!Number.isInteger(channels) || channels < 1 || channels > 255) throw new UsageError('--multifd needs a channel count 1..255');
  const { compression, level } = compressionOf(v);
  const r = await splitToRecording(input, out, { channels, compression, level });
  const wire = r.channels.reduce((n, c) => n + c.wireBytes, 0);
  process.stderr.write(
    `wrote ${out}: main channel ${r.mainBytes} bytes; ${channels} ${compression} channels, ${r.channels.reduce((n, c) => n + c.pages, 0)} pages, ${wire} bytes\n`,
  );
  return 0;
}
