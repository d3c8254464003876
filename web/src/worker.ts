// The inspector's decoding worker: reads the File in slices (Blob.slice, never whole), decodes with the
// portable core, and builds a StreamModel. The page stays responsive and never holds the stream.
import { MigstreamError } from '../../src/codec/errors.js';
import { lz4Decompress, portableCodecs } from '../../src/stream/codec-table.js';
import type { StreamEvent } from '../../src/stream/events.js';
import { StreamDecoder } from '../../src/stream/decoder.js';
import { StatsCollector } from '../../src/stream/stats.js';
import { xbzrleDecode } from '../../src/xbzrle/decode.js';
import { KINDS, type BlockLayout, type FromWorker, type RecordTable, type StreamModel, type ToWorker } from './protocol.js';

const SLICE = 1 << 20;
const MAX_SECTIONS = 20_000;
const MAX_CHUNKS = 20_000;
const MAX_DIGESTS = 20_000;

const post = (m: FromWorker, transfer: Transferable[] = []): void => (self as unknown as Worker).postMessage(m, transfer);

/** The streams decoded so far, by slot (0: the stream, 1: the one it is compared with). */
const files = new Map<number, { file: Blob; model: StreamModel }>();

async function* slices(file: Blob, progress: (bytes: number) => void): AsyncGenerator<Uint8Array> {
  for (let pos = 0; pos < file.size; pos += SLICE) {
    yield new Uint8Array(await file.slice(pos, Math.min(file.size, pos + SLICE)).arrayBuffer());
    progress(Math.min(file.size, pos + SLICE));
  }
}

async function readBytes(file: Blob, start: number, length: number): Promise<Uint8Array> {
  const s = Math.max(0, Math.min(start, file.size));
  return new Uint8Array(await file.slice(s, Math.min(file.size, s + length)).arrayBuffer());
}

let scratch = new Uint8Array(4096);

/** FNV-1a-style over 32-bit words (4× fewer steps than bytes), then the odd tail bytes. */
function fnv(h: number, bytes: Uint8Array): number {
  const n = bytes.length;
  if (scratch.length < n + 4) scratch = new Uint8Array(n + 4);
  scratch.set(bytes); // aligned: payloads are views at any offset of the decoder's buffer
  const words = new Int32Array(scratch.buffer, 0, n >>> 2);
  for (let i = 0; i < words.length; i++) h = Math.imul(h ^ words[i]!, 0x01000193);
  for (let i = n & ~3; i < n; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
  return Math.imul(h ^ n, 0x01000193) >>> 0;
}

function fnvNumber(h: number, n: number): number {
  h = Math.imul(h ^ (n & 0xffff), 0x01000193);
  h = Math.imul(h ^ ((n / 65536) & 0xffff), 0x01000193);
  return Math.imul(h ^ Math.floor(n / 2 ** 32), 0x01000193) >>> 0;
}

function newRecords(capacity: number): RecordTable {
  return {
    count: 0,
    page: new Uint32Array(capacity),
    kind: new Uint8Array(capacity),
    iteration: new Uint32Array(capacity),
    dataOffset: new Float64Array(capacity),
    dataLength: new Uint32Array(capacity),
    fill: new Uint8Array(capacity),
    wireBytes: new Uint32Array(capacity),
    hash: new Uint32Array(capacity),
  };
}

function grow(t: RecordTable): RecordTable {
  const n = newRecords(t.page.length * 2);
  n.count = t.count;
  n.page.set(t.page);
  n.kind.set(t.kind);
  n.iteration.set(t.iteration);
  n.dataOffset.set(t.dataOffset);
  n.dataLength.set(t.dataLength);
  n.fill.set(t.fill);
  n.wireBytes.set(t.wireBytes);
  n.hash.set(t.hash);
  return n;
}

function trim(t: RecordTable): RecordTable {
  const c = t.count;
  return {
    count: c,
    page: t.page.slice(0, c),
    kind: t.kind.slice(0, c),
    iteration: t.iteration.slice(0, c),
    dataOffset: t.dataOffset.slice(0, c),
    dataLength: t.dataLength.slice(0, c),
    fill: t.fill.slice(0, c),
    wireBytes: t.wireBytes.slice(0, c),
    hash: t.hash.slice(0, c),
  };
}

const hex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

async function decode(id: number, file: Blob, name: string): Promise<StreamModel> {
  const stats = new StatsCollector();
  const m: StreamModel = {
    name,
    fileBytes: file.size,
    summary: stats.summary,
    uuid: null,
    targetPageBits: null,
    layout: [],
    sent: new Uint32Array(0),
    how: new Uint8Array(0),
    last: new Uint8Array(0),
    records: newRecords(0),
    sections: [],
    sectionsTotal: 0,
    chunks: [],
    chunksTotal: 0,
    digests: [],
    commands: [],
    manifest: null,
    devices: [],
    deviceHashes: [],
    vmdesc: undefined,
    warnings: [],
    error: null,
  };
  let rec = newRecords(1 << 16);
  const byIdstr = new Map<string, BlockLayout>();
  let iteration = -1;
  let lastPost = 0;
  const progress = (bytes: number): void => {
    const now = performance.now();
    if (now - lastPost > 50 || bytes === file.size) {
      lastPost = now;
      post({ type: 'progress', id, bytes, total: file.size });
    }
  };
  const handle = (ev: StreamEvent): void => {
    stats.handle(ev);
    switch (ev.type) {
      case 'configuration':
        if (ev.configuration.uuid) m.uuid = hex(ev.configuration.uuid);
        if (ev.configuration.targetPageBits !== undefined) m.targetPageBits = ev.configuration.targetPageBits;
        return;
      case 'ram-blocks': {
        // A stream announces its RAMBlocks once; the page map is laid out block after block.
        const pageSize = stats.summary.pageSize;
        let first = 0;
        m.layout = ev.blocks.map((b) => {
          const pages = Math.ceil(b.length / pageSize);
          const l = { idstr: b.idstr, length: b.length, firstPage: first, pages };
          first += pages;
          byIdstr.set(b.idstr, l);
          return l;
        });
        m.sent = new Uint32Array(first);
        m.how = new Uint8Array(first);
        m.last = new Uint8Array(first);
        return;
      }
      case 'section':
        m.sectionsTotal++;
        if (ev.section.idstr === 'ram') iteration = stats.summary.iterations.length - 1;
        if (m.sections.length < MAX_SECTIONS) m.sections.push({ kind: ev.kind, idstr: ev.section.idstr, sectionId: ev.section.sectionId, offset: ev.offset });
        return;
      case 'page': {
        const l = byIdstr.get(ev.block.idstr)!;
        const page = l.firstPage + ev.offset / ev.pageSize;
        const k = KINDS.indexOf(ev.kind);
        if (rec.count === rec.page.length) rec = grow(rec);
        const i = rec.count++;
        rec.page[i] = page;
        rec.kind[i] = k;
        rec.iteration[i] = iteration;
        rec.dataOffset[i] = ev.dataOffset;
        rec.dataLength[i] = ev.kind === 'zero' ? 0 : (ev.compressedBytes ?? ev.data.length);
        rec.fill[i] = ev.fill;
        rec.wireBytes[i] = ev.wireBytes;
        let h = fnvNumber(fnvNumber(0x811c9dc5, page), k * 256 + ev.fill);
        if (ev.kind !== 'zero') h = fnv(h, ev.data);
        rec.hash[i] = h;
        m.sent[page]!++;
        m.how[page]! |= 1 << k;
        m.last[page] = k + 1;
        return;
      }
      case 'block-chunk':
        m.chunksTotal++;
        if (m.chunks.length < MAX_CHUNKS)
          m.chunks.push({
            device: ev.device,
            sector: ev.sector,
            length: ev.length,
            zero: ev.zero,
            codec: ev.codec,
            dataOffset: ev.dataOffset,
            wireBytes: ev.wireBytes,
            section: m.sectionsTotal - 1,
          });
        return;
      case 'ram-digest':
        if (m.digests.length < MAX_DIGESTS)
          m.digests.push({
            block: ev.block.idstr,
            iteration: ev.iteration,
            count: ev.count,
            algorithm: ev.algorithm,
            digest: hex(ev.digest),
            offset: ev.offset,
          });
        return;
      case 'command':
        m.commands.push({ name: ev.name, offset: ev.offset ?? null, length: ev.payload.length });
        return;
      case 'manifest':
        m.manifest = ev.manifest;
        return;
      case 'warning':
        m.warnings.push(ev.warning);
        return;
      case 'end':
        m.devices = ev.tail.parsed ? ev.tail.devices : [];
        m.vmdesc = ev.tail.vmdesc;
        return;
      default:
        return; // counted by the StatsCollector alone
    }
  };
  let consumed = 0;
  // The synchronous decoder, fed one slice at a time: the next slice is read only once this one is parsed,
  // and events are handled in place (no copies, no promise per event), so memory stays flat.
  const decoder = new StreamDecoder(handle);
  try {
    for await (const s of slices(file, progress)) {
      consumed += s.length;
      decoder.push(s);
    }
    decoder.end();
  } catch (e) {
    const err = e instanceof MigstreamError ? e : new MigstreamError('INTERNAL', consumed, e instanceof Error ? e.message : String(e));
    const aroundStart = Math.max(0, err.offset - 128);
    m.error = {
      code: err.code,
      offset: err.offset,
      message: err.message,
      detail: err.detail,
      context: { ...err.context } as Record<string, string>,
      around: await readBytes(file, aroundStart, 256),
      aroundStart,
    };
  }
  stats.summary.streamBytes = file.size;
  m.records = trim(rec);
  for (const d of m.devices) m.deviceHashes.push(fnv(0x811c9dc5, await readBytes(file, deviceDataStart(d), d.size)));
  return m;
}

/** Where a FULL section's data starts: type, section id, idstr (length-prefixed), instance and version. */
export function deviceDataStart(d: { offset: number; idstr: string }): number {
  return d.offset + 1 + 4 + 1 + new TextEncoder().encode(d.idstr).length + 4 + 4;
}

/** A page's final content: its records replayed from the file, from a zeroed page (as the destination starts). */
async function pageContent(slot: number, page: number): Promise<Uint8Array> {
  const entry = files.get(slot);
  if (!entry) throw new Error('no stream loaded');
  const { file, model } = entry;
  const r = model.records;
  const size = model.summary.pageSize;
  const out = new Uint8Array(size);
  for (let i = 0; i < r.count; i++) {
    if (r.page[i] !== page) continue;
    const kind = KINDS[r.kind[i]!]!;
    if (kind === 'zero') {
      out.fill(r.fill[i]!);
      continue;
    }
    const data = await readBytes(file, r.dataOffset[i]!, r.dataLength[i]!);
    if (kind === 'normal') out.set(data);
    else if (kind === 'xbzrle') xbzrleDecode(data, out, r.dataOffset[i]!);
    else if (kind === 'compressed') out.set(portableCodecs.zlib.inflate(data, size));
    else out.set(lz4Decompress(portableCodecs, data, size));
  }
  return out;
}

self.onmessage = async (e: MessageEvent<ToWorker>) => {
  const msg = e.data;
  try {
    if (msg.type === 'decode') {
      const model = await decode(msg.id, msg.file, msg.name);
      files.set(msg.id, { file: msg.file, model });
      post({ type: 'done', id: msg.id, model });
    } else if (msg.type === 'page') {
      try {
        post({ type: 'page', id: msg.id, content: await pageContent(msg.slot, msg.page), error: null });
      } catch (err) {
        post({ type: 'page', id: msg.id, content: null, error: err instanceof Error ? err.message : String(err) });
      }
    } else {
      const entry = files.get(msg.slot);
      post({ type: 'bytes', id: msg.id, start: msg.start, bytes: entry ? await readBytes(entry.file, msg.start, msg.length) : new Uint8Array(0) });
    }
  } catch (err) {
    post({ type: 'failed', id: msg.id, message: err instanceof Error ? err.message : String(err) });
  }
};
