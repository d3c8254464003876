import { encodeDumps, type DumpEncodeOptions, type DumpEncodeResult, type DumpSeries } from '../stream/dump-encoder.js';
import { encodeDumpsPooled, fileSink, transcodePooled } from '../stream/pool/drivers.js';
import { resolveSpec, type CompressionSpec } from '../stream/page-codecs.js';
import type { StreamSummary } from '../stream/stats.js';
import type { TranscodeOptions } from '../stream/transcode.js';
import { UsageError } from './io.js';

/** `--compress zlib|lz4|none --chunk-compress zlib|lz4|none --level N --acceleration N --workers N`, shared by transcode and encode. */
export const COMPRESS_FLAGS = {
  compress: { type: 'string' },
  'chunk-compress': { type: 'string' },
  level: { type: 'string' },
  acceleration: { type: 'string' },
  workers: { type: 'string' },
} as const;

export const COMPRESS_USAGE = `[--compress zlib|lz4|none] [--chunk-compress zlib|lz4|none] [--level 0-9] [--acceleration N] [--workers N]`;

export interface CompressCli {
  /** undefined: --compress none (plain QEMU records). */
  spec?: CompressionSpec;
  /** How variable-size disk chunks are compressed (with --chunk: --chunk-compress, by default --compress's codec). */
  chunkSpec?: CompressionSpec;
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
  const codec = codecOption(values.compress, '--compress');
  const explicitChunk = codecOption(values['chunk-compress'], '--chunk-compress');
  const level = int(values.level as string | undefined, '--level', 0, 9);
  const acceleration = int(values.acceleration as string | undefined, '--acceleration', 1, 65537);
  const workers = int(values.workers as string | undefined, '--workers', 0, 64) ?? 0;
  const chunked = values.chunk !== undefined;
  if (explicitChunk !== undefined && explicitChunk !== 'none' && !chunked) {
    throw new UsageError("--chunk-compress needs --chunk SIZE: QEMU's 1 MiB chunks cannot be compressed");
  }
  // Variable-size chunks follow --compress unless told otherwise.
  const chunkCodec = explicitChunk ?? (chunked ? codec : undefined);
  const codecs = [codec, chunkCodec];
  if ((level !== undefined || acceleration !== undefined) && !codecs.some((c) => c === 'zlib' || c === 'lz4')) {
    throw new UsageError('--level and --acceleration need --compress (or --chunk-compress)');
  }
  if (level !== undefined && !codecs.includes('zlib')) throw new UsageError('--level is for --compress zlib (or --chunk-compress zlib)');
  if (acceleration !== undefined && !codecs.includes('lz4')) throw new UsageError('--acceleration is for --compress lz4 (or --chunk-compress lz4)');
  const specOf = (c: string | undefined) => (c === 'zlib' || c === 'lz4' ? resolveSpec({ codec: c, level, acceleration }) : undefined);
  const spec = specOf(codec);
  const chunkSpec = specOf(chunkCodec);
  if (!spec && !chunkSpec && workers === 0) return undefined;
  return { spec, chunkSpec, workers };
}

function codecOption(value: unknown, flag: string): 'zlib' | 'lz4' | 'none' | undefined {
  if (value === undefined) return undefined;
  if (value !== 'zlib' && value !== 'lz4' && value !== 'none') throw new UsageError(`${flag} is zlib, lz4 or none, got "${String(value)}"`);
  return value;
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
    return await transcodePooled(input, sink.write, { ...options, compress: cli.spec, chunkCompress: cli.chunkSpec, workers: Math.max(1, cli.workers) });
  } finally {
    await sink.close();
  }
}

/**
 * encode with compression: with workers, pages and disk chunks compress on
 * the pool (same bytes as compressing inline), else in the main thread.
 */
export async function encodeCompressed(
  series: DumpSeries[],
  write: (chunk: Uint8Array) => void,
  options: DumpEncodeOptions,
  cli: CompressCli,
): Promise<DumpEncodeResult> {
  const all = { ...options, compress: cli.spec, chunkCompress: cli.chunkSpec };
  if (cli.workers === 0 || (!cli.spec && !cli.chunkSpec)) return encodeDumps(series, write, all);
  return encodeDumpsPooled(series, write, { ...all, workers: cli.workers });
}

/** The manifest and compression lines of `inspect`. */
export function renderCompression(s: StreamSummary): string[] {
  const out: string[] = [];
  if (s.manifest) {
    out.push(
      `extension manifest v${s.manifest.version}: ${s.manifest.extensions.map((e) => `${e.name} v${e.version} ${JSON.stringify(e.params)}`).join('; ')}`,
    );
  }
  for (const [codec, c] of Object.entries(s.compression)) {
    if (c.pages > 0) out.push(`${codec} pages: ${c.pages}, ${c.payloadBytes} payload bytes, ratio ${(c.ratio * 100).toFixed(1)}% of the pages`);
  }
  return out;
}
