import { isRecordingDir, mainConnection, readRecording } from '../relay/recording.js';
import { decodeMultifd, multifdChannelsOf } from './files.js';
import type { MultifdStats } from './merge.js';

export interface MultifdSummary extends MultifdStats {
  /** Pages over all channels, and those left after duplicates: QEMU's `normal` counts the latter. */
  pages: number;
  duplicates: number;
  /** Pages × page size + headers: QEMU's `multifd-bytes` (it counts pages uncompressed). */
  multifdBytes: number;
  /** Bytes the channels took on the wire (handshakes, headers, payloads). */
  wireBytes: number;
  /** What QEMU 7.2 does with other features next to multifd, as seen in this stream. */
  notes: string[];
}

/** The multifd part of `inspect`, or undefined when STREAM has no multifd channels. */
export async function inspectMultifd(path: string): Promise<MultifdSummary | undefined> {
  const conns = isRecordingDir(path) ? readRecording(path) : undefined;
  const channels = multifdChannelsOf(path, conns);
  if (channels.length === 0) return undefined;
  const main = conns ? mainConnection(conns, path).s2d : path;
  let xbzrle = 0;
  let postcopy = false;
  let pageSize = 4096;
  const { stats } = await decodeMultifd(main, channels, (ev) => {
    if (ev.type === 'page') {
      pageSize = ev.pageSize;
      if (ev.kind === 'xbzrle') xbzrle++;
    } else if (ev.type === 'command' && ev.name === 'POSTCOPY_ADVISE') postcopy = true;
  });
  const pages = stats.channels.reduce((n, c) => n + c.pages, 0);
  const duplicates = stats.epochs.reduce((n, e) => n + e.duplicates, 0);
  const notes: string[] = [];
  notes.push(
    xbzrle > 0
      ? `${xbzrle} XBZRLE pages on the main channel next to multifd (QEMU 7.2 itself never sends them with multifd)`
      : 'no XBZRLE: QEMU 7.2 never uses XBZRLE with multifd, even with the xbzrle capability on',
  );
  if (postcopy) notes.push('postcopy with multifd: a QEMU 7.2 destination aborts at the very end of such a migration (an assertion in yank)');
  if (duplicates > 0) notes.push(`${duplicates} pages sent twice in one epoch: QEMU's "normal" counts them once`);
  return {
    ...stats,
    pages,
    duplicates,
    multifdBytes: stats.channels.reduce((n, c) => n + c.headerBytes, 0) + pages * pageSize,
    wireBytes: stats.channels.reduce((n, c) => n + c.wireBytes, 0),
    notes,
  };
}

const ratio = (wire: number, raw: number) => (wire > 0 ? (raw / wire).toFixed(2) : '-');

/** Text lines for `inspect`. */
export function renderMultifd(m: MultifdSummary, table: (rows: (string | number)[][]) => string, pageSize = 4096): string[] {
  const out = [
    '',
    `multifd: ${m.channels.length} channels, ${m.pages} pages (${m.pages - m.duplicates} distinct per epoch), ${m.wireBytes} bytes on the wire, multifd-bytes ${m.multifdBytes}`,
  ];
  out.push(
    table([
      ['channel', 'connection', 'compression', 'packets', 'syncs', 'syncs with pages', 'pages', 'wire bytes', 'ratio'],
      ...m.channels.map((c) => [
        c.channel,
        c.source,
        c.compression ?? '-',
        c.packets,
        c.syncPackets,
        c.syncWithPages,
        c.pages,
        c.wireBytes,
        ratio(c.payloadBytes, c.pages * pageSize),
      ]),
    ]),
  );
  out.push('', 'multifd epochs (each closed by one EOS on the main channel and one SYNC packet per channel):');
  out.push(
    table([
      ['#', 'packets', 'pages', 'main-channel pages', 'duplicates', 'wire bytes', 'ratio'],
      ...m.epochs.map((e) => [e.index, e.packets, e.pages, e.mainPages, e.duplicates, e.wireBytes, ratio(e.payloadBytes, e.pages * pageSize)]),
    ]),
  );
  for (const n of m.notes) out.push(`note: ${n}`);
  return out;
}
