import { createReadStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { encodeDumps, readTemplate, type DumpSeries, type StreamTemplate } from '../stream/dump-encoder.js';
import type { XbzrleIterationStats } from '../stream/ram-sender.js';
import { parseWriteLog, WriteLogDiskSource, type DiskSource } from '../stream/disk-source.js';
import type { StreamEvent } from '../stream/events.js';
import { AutoRamStore, decodeFile, DigestCheck, FileDiskSink, FileRamSink, ramBlockFileName, diskFileName } from '../stream/files.js';
import { VerifyingRamStore, type DigestAlgorithm } from '../stream/digest.js';
import { StatsCollector, type StreamSummary } from '../stream/stats.js';
import { Transcoder, type TranscodeOptions } from '../stream/transcode.js';
import { StreamEncoder } from '../stream/encoder.js';
import { encoderCompressors, resolveSpecs } from '../stream/page-codecs.js';
import { decodeOptions, formatBytes, OutputFile, table, UsageError } from './io.js';
import { inspectMigration, renderMigration } from '../relay/inspect-migration.js';
import { isRecordingDir } from '../relay/recording.js';
import { inspectMultifd, renderMultifd } from '../multifd/inspect.js';
import { encodeCompressed, renderCompression, transcodeWithPool, type CompressCli } from './compression.js';
import { embedSummary, inspectorPage } from './inspect-html.js';

export async function inspectFile(path: string, strict = false): Promise<StreamSummary> {
  const stats = new StatsCollector();
  // A stream with iteration digests has them checked: that needs its RAM, kept only then.
  const digests = new DigestCheck();
  try {
    stats.summary.streamBytes = await decodeFile(
      path,
      (ev) => {
        digests.handle(ev);
        stats.handle(ev);
      },
      decodeOptions(strict),
    );
  } finally {
    digests.close();
  }
  if (stats.summary.digests) stats.summary.digests.verified = digests.active;
  return stats.summary;
}

export async function runInspect(path: string, opts: { json: boolean; strict?: boolean; html?: string }): Promise<number> {
  const page = opts.html === undefined ? undefined : inspectorPage(); // before decoding: a missing page fails fast
  const s = await inspectFile(path, opts.strict);
  if (opts.html !== undefined) writeFileSync(opts.html, embedSummary(page!, path, s));
  // Phases, discards and the return path: for migrations with commands and relay recordings (src/relay/inspect-migration.ts).
  const m = s.commands.length > 0 || isRecordingDir(path) ? await inspectMigration(path) : undefined;
  const mf = await inspectMultifd(path);
  const json = { ...s, ...(m ? { migration: m } : {}), ...(mf ? { multifd: mf } : {}) };
  process.stdout.write(
    opts.json
      ? `${JSON.stringify(json, null, 2)}\n`
      : `${[renderSummary(s), ...(m ? renderMigration(m) : []), ...(mf ? renderMultifd(mf, table, s.pageSize) : [])].join('\n')}\n`,
  );
  return 0;
}

export function renderSummary(s: StreamSummary): string {
  const out: string[] = [];
  out.push(
    `QEMU migration stream v${s.version}, ${formatBytes(s.streamBytes)} (${s.streamBytes} bytes), machine ${s.machine ?? '(no configuration)'}, page size ${s.pageSize}`,
  );
  if (s.capabilities.length) out.push(`validated capabilities: ${s.capabilities.join(', ')}`);
  for (const w of s.warnings) out.push(`warning [${w.code}] at byte ${w.offset}: ${w.message}`);
  out.push(...renderCompression(s));
  if (s.digests) {
    const d = s.digests;
    out.push(
      `iteration digests (${d.algorithm}): ${d.records} records over ${d.pageRecords} page records, ${d.bytes} bytes${d.verified ? ', all verified' : ''}`,
    );
  }
  const ramTotal = s.ramBlocks.reduce((n, b) => n + b.length, 0);
  out.push('', `RAMBlocks: ${s.ramBlocks.length}, ${formatBytes(ramTotal)}`);
  out.push(table([['idstr', 'size', 'bytes'], ...s.ramBlocks.map((b) => [b.idstr, formatBytes(b.length), b.length])]));
  out.push('', `RAM sections (iterations): ${s.iterations.length}`);
  const rows: (string | number)[][] = [['#', 'kind', 'zero', 'normal', 'xbzrle', 'compressed', 'lz4', 'bytes']];
  const shown = s.iterations.length > 40 ? [...s.iterations.slice(0, 20), ...s.iterations.slice(-20)] : s.iterations;
  for (const it of shown) {
    if (s.iterations.length > 40 && it.index === s.iterations[s.iterations.length - 20]!.index) rows.push(['…', '', '', '', '', '', '', '']);
    const bytes = it.zero.bytes + it.normal.bytes + it.xbzrle.bytes + it.compressed.bytes + it.lz4.bytes;
    rows.push([it.index, it.kind, it.zero.pages, it.normal.pages, it.xbzrle.pages, it.compressed.pages, it.lz4.pages, bytes]);
  }
  const t = s.totals;
  rows.push([
    'total',
    '',
    t.zero.pages,
    t.normal.pages,
    t.xbzrle.pages,
    t.compressed.pages,
    t.lz4.pages,
    t.zero.bytes + t.normal.bytes + t.xbzrle.bytes + t.compressed.bytes + t.lz4.bytes,
  ]);
  if (s.digests) {
    // a digests column: records per RAM section
    rows[0]!.push('digests');
    for (const row of rows.slice(1)) row.push(typeof row[0] === 'number' ? s.iterations[row[0]]!.digests : row[0] === 'total' ? s.digests.records : '');
  }
  out.push(table(rows));
  if (s.blockDevices.length) {
    out.push('', 'block devices:');
    out.push(
      table([
        ['device', 'chunks', 'zero chunks', 'compressed', 'chunk sizes', 'payload bytes', 'extent'],
        ...s.blockDevices.map((d) => [
          d.device,
          d.chunks,
          d.zeroChunks,
          d.compressedChunks ? `${d.compressedChunks} (${formatBytes(d.compressedChunkBytes)})` : 0,
          d.chunkSizes.map(formatBytes).join(','),
          d.bytes,
          d.extent,
        ]),
      ]),
    );
  }
  if (s.dirtyBitmaps.length) {
    out.push('', 'dirty bitmaps:');
    out.push(
      table([
        ['node', 'bitmap', 'granularity', 'enabled', 'persistent', 'dirty bytes', 'complete'],
        ...s.dirtyBitmaps.map((b) => [
          b.node,
          b.bitmap,
          formatBytes(b.granularity),
          b.enabled ? 'yes' : 'no',
          b.persistent ? 'yes' : 'no',
          b.dirtyGranules * b.granularity,
          b.complete ? 'yes' : 'no',
        ]),
      ]),
    );
  }
  if (s.commands.length) out.push('', `commands: ${s.commands.map((c) => c.name).join(', ')}`);
  if (s.devices) {
    out.push('', `device sections: ${s.devices.length}${s.vmdesc ? ` (vmdesc: ${s.vmdescBytes} bytes)` : ' (no vmdesc)'}`);
    out.push(table([['name', 'instance', 'version', 'size'], ...s.devices.map((d) => [d.idstr, d.instanceId, d.versionId, d.size])]));
  } else {
    out.push('', `device state: ${s.deviceStateBytes} bytes, kept opaque`);
  }
  return out.join('\n');
}

export interface ExtractResult {
  summary: StreamSummary;
  ramFiles: Record<string, string>;
  diskFiles: Record<string, string>;
  diskSizes: Record<string, number>;
}

export async function extractFile(path: string, dir: string, diskSizes: Record<string, number> = {}, strict = false): Promise<ExtractResult> {
  mkdirSync(dir, { recursive: true });
  const stats = new StatsCollector();
  const ram = new VerifyingRamStore(new FileRamSink(dir)); // checks the stream's iteration digests, if it has them
  const disks = new FileDiskSink(dir, diskSizes);
  const handle = (ev: StreamEvent): void => {
    stats.handle(ev);
    ram.handle(ev);
    if (ev.type === 'block-chunk') disks.chunk(ev);
  };
  try {
    stats.summary.streamBytes = await decodeFile(path, handle, decodeOptions(strict));
  } finally {
    ram.close();
  }
  const sizes = disks.close();
  const s = stats.summary;
  const devices = {
    machine: s.machine,
    capabilities: s.capabilities,
    pageSize: s.pageSize,
    ramBlocks: s.ramBlocks.map((b) => ({ ...b, file: ramBlockFileName(b.idstr) })),
    blockDevices: Object.entries(sizes).map(([device, size]) => ({ device, size, file: diskFileName(device) })),
    devices: s.devices,
    vmdesc: s.vmdesc,
  };
  writeFileSync(`${dir}/devices.json`, `${JSON.stringify(devices, null, 2)}\n`);
  return {
    summary: s,
    ramFiles: Object.fromEntries(s.ramBlocks.map((b) => [b.idstr, `${dir}/${ramBlockFileName(b.idstr)}`])),
    diskFiles: Object.fromEntries(Object.keys(sizes).map((d) => [d, `${dir}/${diskFileName(d)}`])),
    diskSizes: sizes,
  };
}

export async function runExtract(path: string, dir: string, diskSizes: Record<string, number>, strict = false): Promise<number> {
  const r = await extractFile(path, dir, diskSizes, strict);
  const n = Object.keys(r.ramFiles).length + Object.keys(r.diskFiles).length;
  process.stderr.write(`extracted ${n} files into ${dir}\n`);
  return 0;
}

export interface TranscodeFileResult {
  inBytes: number;
  outBytes: number;
  xbzrle: XbzrleIterationStats[];
}

export async function transcodeFile(input: string, output: string, options: TranscodeOptions = {}): Promise<TranscodeFileResult> {
  const out = new OutputFile(output);
  const ramStore = options.ramStore ?? new AutoRamStore();
  try {
    // out.write is synchronous: the encoder may hand it views of its own buffer (no copy per chunk)
    const pageSize = options.pageSize ?? 4096;
    const enc = new StreamEncoder(out.write, { pageSize, sinkConsumes: true, ...encoderCompressors(resolveSpecs(options)) });
    const t = new Transcoder(enc, { ...options, ramStore });
    // The transcoder keeps no view of the input (its store and encoder copy; LZ4 pages inflate into its store): stdin's buffers are refilled.
    const inBytes = await decodeFile(input, t.handle, { ...options, pageTarget: t.pageTarget }, true);
    return { inBytes, outBytes: out.bytes, xbzrle: t.xbzrleStats };
  } finally {
    out.close();
    ramStore.close();
  }
}

export async function runTranscode(
  input: string,
  output: string,
  opts: {
    xbzrle?: TranscodeOptions['xbzrle'];
    stats: boolean;
    compress?: CompressCli;
    blockChunk?: number;
    diskSizes?: Record<string, number>;
    /** Write per-iteration digests (extension "iteration-digests"). */
    digest?: DigestAlgorithm;
    strict?: boolean;
  },
): Promise<number> {
  const c = opts.compress;
  const ramStore = new AutoRamStore();
  const common = {
    xbzrle: opts.xbzrle,
    blockChunk: opts.blockChunk,
    diskSizes: opts.diskSizes,
    ramStore,
    digest: opts.digest,
    ...decodeOptions(opts.strict === true),
  };
  let r;
  try {
    r =
      c && c.workers > 0
        ? await transcodeWithPool(input, output, c, common)
        : await transcodeFile(input, output, { ...common, compress: c?.spec, chunkCompress: c?.chunkSpec });
  } finally {
    ramStore.close();
  }
  const log = (s: string) => process.stderr.write(`${s}\n`);
  log(`transcoded ${r.inBytes} → ${r.outBytes} bytes`);
  if (opts.xbzrle) log(renderXbzrle(r.xbzrle, opts.stats));
  return 0;
}

/** XBZRLE counters as QEMU's `info migrate` names them: totals, and per iteration on request. */
export function renderXbzrle(history: XbzrleIterationStats[], perIteration: boolean): string {
  const sum = history.reduce(
    (a, s) => ({
      pages: a.pages + s.pages,
      bytes: a.bytes + s.bytes,
      miss: a.miss + s.cacheMiss,
      overflow: a.overflow + s.overflow,
      sent: a.sent + s.records.zero + s.records.normal + s.records.xbzrle + s.records.unchanged,
    }),
    { pages: 0, bytes: 0, miss: 0, overflow: 0, sent: 0 },
  );
  const lines = [
    `xbzrle: pages ${sum.pages}, bytes ${sum.bytes}, cache miss ${sum.miss}, cache miss rate ${(sum.sent ? sum.miss / sum.sent : 0).toFixed(3)}, overflow ${sum.overflow}, encoding rate ${(sum.bytes ? (sum.pages * 4096) / sum.bytes : 0).toFixed(1)}`,
  ];
  if (perIteration) {
    lines.push(
      table([
        ['iteration', 'zero', 'normal', 'xbzrle', 'unchanged', 'xbzrle pages', 'bytes', 'cache miss', 'miss rate', 'overflow', 'encoding rate'],
        ...history.map((s) => [
          s.iteration,
          s.records.zero,
          s.records.normal,
          s.records.xbzrle,
          s.records.unchanged,
          s.pages,
          s.bytes,
          s.cacheMiss,
          s.cacheMissRate.toFixed(3),
          s.overflow,
          s.encodingRate.toFixed(1),
        ]),
      ]),
    );
  }
  return lines.join('\n');
}

export interface EncodeCommand {
  dumps?: string[];
  manifest?: string;
  block: string;
  out: string;
  template?: string;
  xbzrle?: TranscodeOptions['xbzrle'];
  /** Block device name → raw image (its content at iteration 0). */
  disks?: Record<string, string>;
  /** Block device name → write log (groups of writes between iterations). */
  diskWrites?: Record<string, string>;
  zeroBlocks?: boolean;
  /** Variable-size block chunks of this size (extension). */
  blockChunk?: number;
  compress?: CompressCli;
  /** Per-iteration digests (extension "iteration-digests"). */
  digest?: DigestAlgorithm;
}

function readDisks(cmd: EncodeCommand, iterations: number): DiskSource[] {
  for (const name of Object.keys(cmd.diskWrites ?? {})) {
    if (!cmd.disks?.[name]) throw new UsageError(`--disk-writes ${name}=… needs --disk ${name}=IMG`);
  }
  return Object.entries(cmd.disks ?? {}).map(([device, path]) => {
    const image = new Uint8Array(readFileSync(path));
    const log = cmd.diskWrites?.[device];
    const groups = log ? parseWriteLog(new Uint8Array(readFileSync(log))) : [];
    while (groups.length < iterations) groups.push([]);
    return new WriteLogDiskSource(device, image, groups);
  });
}

/** A manifest describing several RAMBlocks per dump: {"blocks": [{"idstr": "pc.ram", "dumps": ["d0", "d1"]}]}. */
function readSeries(cmd: EncodeCommand): DumpSeries[] {
  if (cmd.dumps) return [{ idstr: cmd.block, dumps: cmd.dumps.map((p) => new Uint8Array(readFileSync(p))) }];
  const base = dirname(cmd.manifest!);
  const m = JSON.parse(readFileSync(cmd.manifest!, 'utf8')) as { blocks?: { idstr?: unknown; dumps?: unknown }[] };
  if (!Array.isArray(m.blocks)) throw new UsageError(`${cmd.manifest}: expected {"blocks": [{"idstr": …, "dumps": […]}]}`);
  return m.blocks.map((b) => {
    if (typeof b.idstr !== 'string' || !Array.isArray(b.dumps)) throw new UsageError(`${cmd.manifest}: each block needs "idstr" and "dumps"`);
    return { idstr: b.idstr, dumps: b.dumps.map((p) => new Uint8Array(readFileSync(resolve(base, String(p))))) };
  });
}

export async function runEncode(cmd: EncodeCommand): Promise<number> {
  const series = readSeries(cmd);
  let template: StreamTemplate | undefined;
  if (cmd.template) {
    const chunks: Uint8Array[] = [];
    for await (const c of (cmd.template === '-' ? process.stdin : createReadStream(cmd.template)) as AsyncIterable<Buffer>) chunks.push(c);
    template = readTemplate(new Uint8Array(Buffer.concat(chunks)));
  }
  const out = new OutputFile(cmd.out);
  let result;
  try {
    const disks = readDisks(cmd, series[0]!.dumps.length - 1);
    const options = { xbzrle: cmd.xbzrle, template, disks, zeroBlocks: cmd.zeroBlocks, blockChunkSize: cmd.blockChunk, digest: cmd.digest };
    result = cmd.compress ? await encodeCompressed(series, out.write, options, cmd.compress) : encodeDumps(series, out.write, options);
  } catch (e) {
    if (e instanceof RangeError) throw new UsageError(e.message);
    throw e;
  } finally {
    out.close();
  }
  const log = (s: string) => process.stderr.write(`${s}\n`);
  log(`encoded ${result.iterations.length} iterations, ${out.bytes} bytes`);
  log(
    table([
      ['iteration', 'pages sent', 'zero', 'normal', 'xbzrle', 'unchanged'],
      ...result.iterations.map((it, i) => [i, it.pagesSent, it.records.zero, it.records.normal, it.records.xbzrle, it.records.unchanged]),
    ]),
  );
  if (cmd.xbzrle) log(renderXbzrle(result.xbzrle, false));
  if (result.blocks.length) {
    log(
      table([
        ['block iteration', 'chunks', 'zero chunks', 'compressed', 'bytes'],
        ...result.blocks.map((b, i) => [i, b.chunks, b.zeroChunks, b.compressedChunks, b.bytes]),
      ]),
    );
  }
  return 0;
}
