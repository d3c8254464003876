import { readFileSync, statSync } from 'node:fs';
import { decodeFile } from '../stream/files.js';
import type { RamBlockInfo } from '../stream/events.js';
import { PreemptDecoder } from '../stream/preempt.js';
import { ReturnPathDecoder, type ReturnPathEvent } from '../stream/return-path.js';
import { isRecordingDir, mainConnection, readRecording } from './recording.js';

/** What `inspect` adds for a migration with commands (postcopy, return path) or a relay recording. */
export interface MigrationSummary {
  connections?: { n: number; kind: string; s2dBytes: number; d2sBytes: number }[];
  /** The main channel's commands in order; PACKAGED's own in `nested`. */
  commands: { offset: number; name: string; detail?: string; nested?: string[] }[];
  phases: {
    precopyRamSections: number;
    precopyPages: number;
    /** Stream offset of POSTCOPY_RAM_DISCARD/PACKAGED: where precopy ended (absent: no switch). */
    switchAt?: number;
    postcopyRamSections: number;
    /** Pages the main channel carried after the switch, and those of the preempt channel. */
    postcopyPages: number;
    preemptPages: number;
  };
  discards: { block: string; commands: number; ranges: number; bytes: number }[];
  returnPath?: {
    messages: Record<string, number>;
    pongs: number[];
    /** Distinct pages the destination asked for (REQ_PAGES/REQ_PAGES_ID). */
    requestedPages: number;
    shut?: number;
  };
}

export async function inspectMigration(path: string): Promise<MigrationSummary> {
  const m: MigrationSummary = {
    commands: [],
    phases: { precopyRamSections: 0, precopyPages: 0, postcopyRamSections: 0, postcopyPages: 0, preemptPages: 0 },
    discards: [],
  };
  const discards = new Map<string, MigrationSummary['discards'][number]>();
  let postcopy = false;
  let pageSize = 4096;
  let blocks: RamBlockInfo[] = [];
  const conns = isRecordingDir(path) ? readRecording(path) : undefined;
  const main = conns && mainConnection(conns, path);
  await decodeFile(main ? main.s2d : path, (ev) => {
    if (ev.type === 'command') {
      const info = ev.info;
      let detail: string | undefined;
      if (info?.name === 'PING') detail = String(info.value);
      else if (info?.name === 'POSTCOPY_ADVISE' && info.targetPageSize !== undefined)
        detail = `host page sizes ${info.hostPageSizes}, target page size ${info.targetPageSize}`;
      else if (info?.name === 'POSTCOPY_RAM_DISCARD') {
        detail = `${info.block}: ${info.ranges.length} ranges`;
        const d = discards.get(info.block) ?? { block: info.block, commands: 0, ranges: 0, bytes: 0 };
        d.commands++;
        d.ranges += info.ranges.length;
        d.bytes += info.ranges.reduce((n, r) => n + r[1], 0);
        discards.set(info.block, d);
      } else if (info?.name === 'PACKAGED') detail = `${info.length} bytes, ${ev.package!.devices.length} device sections`;
      const nested = ev.package?.commands.map((c) => (c.info.name === 'PING' ? `PING ${c.info.value}` : c.name));
      m.commands.push({ offset: ev.offset ?? -1, name: ev.name, ...(detail ? { detail } : {}), ...(nested ? { nested } : {}) });
      if ((info?.name === 'POSTCOPY_RAM_DISCARD' || info?.name === 'PACKAGED') && m.phases.switchAt === undefined) m.phases.switchAt = ev.offset;
      if (info?.name === 'PACKAGED') postcopy = true;
    } else if (ev.type === 'iteration-end') {
      if (postcopy) m.phases.postcopyRamSections++;
      else m.phases.precopyRamSections++;
    } else if (ev.type === 'page') {
      pageSize = ev.pageSize;
      if (postcopy) m.phases.postcopyPages++;
      else m.phases.precopyPages++;
    } else if (ev.type === 'ram-blocks') blocks = ev.blocks;
  });
  m.discards = [...discards.values()];
  if (main && conns) {
    for (const c of conns.filter((x) => x.kind === 'preempt')) {
      const d = new PreemptDecoder(blocks, pageSize, () => m.phases.preemptPages++);
      d.push(readFileSync(c.s2d));
      d.end();
    }
    m.connections = conns.map((c) => ({ n: c.n, kind: c.kind, s2dBytes: size(c.s2d), d2sBytes: size(c.d2s) }));
    m.returnPath = returnPathSummary(readFileSync(main.d2s), pageSize);
  }
  return m;
}

function size(p: string): number {
  try {
    return statSync(p).size;
  } catch {
    return 0;
  }
}

function returnPathSummary(bytes: Uint8Array, pageSize: number): NonNullable<MigrationSummary['returnPath']> {
  const r: NonNullable<MigrationSummary['returnPath']> = { messages: {}, pongs: [], requestedPages: 0 };
  const pages = new Set<string>();
  const d = new ReturnPathDecoder((ev: ReturnPathEvent) => {
    r.messages[ev.type] = (r.messages[ev.type] ?? 0) + 1;
    if (ev.type === 'PONG') r.pongs.push(ev.value);
    else if (ev.type === 'SHUT') r.shut = ev.value;
    else if (ev.type === 'REQ_PAGES' || ev.type === 'REQ_PAGES_ID') {
      for (let o = ev.start; o < ev.start + ev.length; o += pageSize) pages.add(`${ev.block}@${o}`);
    }
  });
  d.push(bytes);
  d.end();
  r.requestedPages = pages.size;
  return r;
}

export function renderMigration(m: MigrationSummary): string[] {
  const out: string[] = [''];
  if (m.connections) {
    out.push(`recording: ${m.connections.length} connection(s)`);
    for (const c of m.connections) out.push(`  conn-${c.n} ${c.kind}: ${c.s2dBytes} bytes source→destination, ${c.d2sBytes} back`);
  }
  const p = m.phases;
  out.push(
    p.switchAt === undefined
      ? `phases: precopy only, ${p.precopyRamSections} RAM sections, ${p.precopyPages} pages`
      : `phases: precopy ${p.precopyRamSections} RAM sections (${p.precopyPages} pages), switch to postcopy, postcopy ${p.postcopyRamSections} RAM sections (${p.postcopyPages} pages pushed on the main channel, ${p.preemptPages} on the preempt channel)`,
  );
  out.push(
    `commands: ${m.commands.map((c) => `${c.name}${c.detail ? ` (${c.detail})` : ''}${c.nested ? ` [${c.nested.join(', ')}]` : ''}`).join(', ') || 'none'}`,
  );
  for (const d of m.discards) out.push(`discards: ${d.block}: ${d.commands} commands, ${d.ranges} ranges, ${d.bytes} bytes`);
  const r = m.returnPath;
  if (r) {
    const msgs = Object.entries(r.messages)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    out.push(
      `return path: ${msgs || 'no messages'}; PONGs in order ${r.pongs.join(', ') || '-'}; ${r.requestedPages} pages requested${r.shut !== undefined ? `; SHUT ${r.shut}` : ''}`,
    );
  }
  return out;
}
