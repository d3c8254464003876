import { mkdirSync, writeFileSync } from 'node:fs';
import type { StreamEvent } from '../stream/events.js';
import { decodeFile, FileDiskSink, FileRamSink, ramBlockFileName, diskFileName } from '../stream/files.js';
import { StatsCollector, type StreamSummary } from '../stream/stats.js';
import { Transcoder } from '../stream/transcode.js';
import { formatBytes, OutputFile, table } from './io.js';

export async function inspectFile(path: string): Promise<StreamSummary> {
  const stats = new StatsCollector();
  stats.summary.streamBytes = await decodeFile(path, stats.handle);
  return stats.summary;
}

export async function runInspect(path: string, opts: { json: boolean }): Promise<number> {
  const s = await inspectFile(path);
  process.stdout.write(opts.json ? `${JSON.stringify(s, null, 2)}\n` : `${renderSummary(s)}\n`);
  return 0;
}

export function renderSummary(s: StreamSummary): string {
  const out: string[] = [];
  out.push(
    `QEMU migration stream v${s.version}, ${formatBytes(s.streamBytes)} (${s.streamBytes} bytes), machine ${s.machine ?? '(no configuration)'}, page size ${s.pageSize}`,
  );
  if (s.capabilities.length) out.push(`validated capabilities: ${s.capabilities.join(', ')}`);
  const ramTotal = s.ramBlocks.reduce((n, b) => n + b.length, 0);
  out.push('', `RAMBlocks: ${s.ramBlocks.length}, ${formatBytes(ramTotal)}`);
  out.push(table([['idstr', 'size', 'bytes'], ...s.ramBlocks.map((b) => [b.idstr, formatBytes(b.length), b.length])]));
  out.push('', `RAM sections (iterations): ${s.iterations.length}`);
  const rows: (string | number)[][] = [['#', 'kind', 'zero', 'normal', 'xbzrle', 'compressed', 'bytes']];
  const shown = s.iterations.length > 40 ? [...s.iterations.slice(0, 20), ...s.iterations.slice(-20)] : s.iterations;
  for (const it of shown) {
    if (s.iterations.length > 40 && it.index === s.iterations[s.iterations.length - 20]!.index) rows.push(['…', '', '', '', '', '', '']);
    const bytes = it.zero.bytes + it.normal.bytes + it.xbzrle.bytes + it.compressed.bytes;
    rows.push([it.index, it.kind, it.zero.pages, it.normal.pages, it.xbzrle.pages, it.compressed.pages, bytes]);
  }
  const t = s.totals;
  rows.push(['total', '', t.zero.pages, t.normal.pages, t.xbzrle.pages, t.compressed.pages, t.zero.bytes + t.normal.bytes + t.xbzrle.bytes + t.compressed.bytes]);
  out.push(table(rows));
  if (s.blockDevices.length) {
    out.push('', 'block devices:');
    out.push(
      table([
        ['device', 'chunks', 'zero chunks', 'chunk sizes', 'payload bytes', 'extent'],
        ...s.blockDevices.map((d) => [d.device, d.chunks, d.zeroChunks, d.chunkSizes.map(formatBytes).join(','), d.bytes, d.extent]),
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

export async function extractFile(path: string, dir: string, diskSizes: Record<string, number> = {}): Promise<ExtractResult> {
  mkdirSync(dir, { recursive: true });
  const stats = new StatsCollector();
  const ram = new FileRamSink(dir);
  const disks = new FileDiskSink(dir, diskSizes);
  const handle = (ev: StreamEvent): void => {
    stats.handle(ev);
    if (ev.type === 'ram-blocks') ram.setBlocks(ev.blocks);
    else if (ev.type === 'page') ram.apply(ev);
    else if (ev.type === 'block-chunk') disks.chunk(ev);
  };
  try {
    stats.summary.streamBytes = await decodeFile(path, handle);
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

export async function runExtract(path: string, dir: string, diskSizes: Record<string, number>): Promise<number> {
  const r = await extractFile(path, dir, diskSizes);
  const n = Object.keys(r.ramFiles).length + Object.keys(r.diskFiles).length;
  process.stderr.write(`extracted ${n} files into ${dir}\n`);
  return 0;
}

export async function transcodeFile(input: string, output: string): Promise<{ inBytes: number; outBytes: number }> {
  const out = new OutputFile(output);
  try {
    const t = new Transcoder(out.write);
    const inBytes = await decodeFile(input, t.handle);
    return { inBytes, outBytes: out.bytes };
  } finally {
    out.close();
  }
}

export async function runTranscode(input: string, output: string): Promise<number> {
  const r = await transcodeFile(input, output);
  if (output !== '-') process.stderr.write(`transcoded ${r.inBytes} → ${r.outBytes} bytes\n`);
  return 0;
}
