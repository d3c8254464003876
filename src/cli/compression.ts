import { encodeDumps, type DumpEncodeOptions, type DumpEncodeResult, type DumpSeries } from '../stream/dump-encoder.js';
import { fileSink, transcodeBytesPooled, transcodePooled } from '../stream/pool/drivers.js';
import { resolveSpec, type CompressionSpec } from '../stream/page-codecs.js';
import type { StreamSummary } from '../stream/stats.js';
import { concatChunks, type TranscodeOptions } from '../stream/transcode.js';
import { UsageError } from './io.js';

/** `--compress zlib|lz4|none --level N --acceleration N --workers N`, shared by transcode and encode. */
export const COMPRESS_FLAGS = {
  compress: { type: 'string' },
  level: { type: 'string' },
  acceleration: { type: 'string' },
  workers: { type: 'string' },
} as const;

export const COMPRESS_USAGE = `[--compress zlib|lz4|none] [--level 0-9] [--acceleration N] [--workers N]`;

export interface CompressCli {
  /** undefined: --compress none (plain QEMU records). */
  spec?: CompressionSpec;
  /** Worker threads; 0 compresses and decompresses in the main thread. */
  workers: number;
}

function int(text: string | undefined, flag: string, min: number, max: number): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > max) throw new UsageError(`${flag} expects an integer ${min}..${max}, got "${text}"`);
  return n;
}

export function compressOption(values: Record<string, unknown>): CompressCli | undefined {
  const codec = values.compress as string | undefined;
  const level = int(values.level as string | undefined, '--level', 0, 9);
  const acceleration = int(values.acceleration as string | undefined, '--acceleration', 1, 65537);
  const workers = int(values.workers as string | undefined, '--workers', 0, 64) ?? 0;
  if (codec === undefined) {
    if (level !== undefined || acceleration !== undefined) throw new UsageError('--level and --acceleration need --compress');
    return workers > 0 ? { workers } : undefined;
  }
  if (codec !== 'zlib' && codec !== 'lz4' && codec !== 'none') throw new UsageError(`--compress is zlib, lz4 or none, got "${codec}"`);
  if (codec !== 'zlib' && level !== undefined) throw new UsageError('--level is for --compress zlib');
  if (codec !== 'lz4' && acceleration !== undefined) throw new UsageError('--acceleration is for --compress lz4');
  if (codec === 'none') return { workers };
  const spec = resolveSpec({ codec, level, acceleration });
  return { spec, workers };
}

/** transcode with compression and/or workers; without workers the synchronous transcoder does it. */
export async function transcodeWithPool(
  input: string,
  output: string,
  cli: CompressCli,
  options: TranscodeOptions,
): Promise<{ inBytes: number; outBytes: number; xbzrle: import('../stream/ram-sender.js').XbzrleIterationStats[] }> {
  const sink = fileSink(output);
  try {
    return await transcodePooled(input, sink.write, { ...options, compress: cli.spec, workers: Math.max(1, cli.workers) });
  } finally {
    await sink.close();
  }
}

/**
 * encode with compression. With workers (and no XBZRLE, whose records must
 * keep their place) the dumps are encoded plain in memory and recompressed
 * on the pool, which writes the same bytes as compressing inline.
 */
export async function encodeCompressed(
  series: DumpSeries[],
  write: (chunk: Uint8Array) => void,
  options: DumpEncodeOptions,
  cli: CompressCli,
): Promise<DumpEncodeResult> {
  if (cli.workers === 0 || !cli.spec || options.xbzrle || options.disks?.length) {
    if (cli.workers > 0) process.stderr.write('note: encode compresses in the main thread with --xbzrle or disks\n');
    return encodeDumps(series, write, { ...options, compress: cli.spec });
  }
  const parts: Uint8Array[] = [];
  // the plain stream is re-encoded on the pool, which writes the digests (if asked) of what it sends
  const result = encodeDumps(series, (c) => parts.push(c.slice()), { ...options, digest: undefined });
  write(await transcodeBytesPooled(concatChunks(parts), { compress: cli.spec, workers: cli.workers, digest: options.digest }));
  return result;
}

/** The manifest and compression lines of `inspect`. */
export function renderCompression(s: StreamSummary): string[] {
  const out: string[] = [];
  if (s.manifest) {
    out.push(`extension manifest v${s.manifest.version}: ${s.manifest.extensions.map((e) => `${e.name} v${e.version} ${JSON.stringify(e.params)}`).join('; ')}`);
  }
  for (const [codec, c] of Object.entries(s.compression)) {
    if (c.pages > 0) out.push(`${codec} pages: ${c.pages}, ${c.payloadBytes} payload bytes, ratio ${(c.ratio * 100).toFixed(1)}% of the pages`);
  }
  return out;
}
