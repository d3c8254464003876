// Compare two decoded streams: the first RAM section, page record and device section where they differ.
import { h, hex, section } from './dom.js';
import { KINDS, type StreamModel } from './protocol.js';
import { iterationBytes } from './views.js';

export interface RecordRef {
  index: number;
  iteration: number;
  block: string;
  offset: number;
  kind: string;
  fill: number;
  wireBytes: number;
  hash: number;
}

export interface Difference {
  iteration: { index: number; a: string; b: string } | null;
  record: { index: number; a: RecordRef | null; b: RecordRef | null } | null;
  device: { index: number; a: string; b: string } | null;
}

function blockOf(m: StreamModel, page: number): { idstr: string; offset: number } {
  for (const l of m.layout)
    if (page >= l.firstPage && page < l.firstPage + l.pages) return { idstr: l.idstr, offset: (page - l.firstPage) * m.summary.pageSize };
  return { idstr: '?', offset: 0 };
}

export function recordRef(m: StreamModel, i: number): RecordRef | null {
  const r = m.records;
  if (i >= r.count) return null;
  const b = blockOf(m, r.page[i]!);
  return {
    index: i,
    iteration: r.iteration[i]!,
    block: b.idstr,
    offset: b.offset,
    kind: KINDS[r.kind[i]!]!,
    fill: r.fill[i]!,
    wireBytes: r.wireBytes[i]!,
    hash: r.hash[i]!,
  };
}

function describeIteration(m: StreamModel, i: number): string {
  const it = m.summary.iterations[i];
  if (!it) return '(absent)';
  return `${it.kind}: ${
    KINDS.filter((k) => it[k].pages)
      .map((k) => `${it[k].pages} ${k}`)
      .join(', ') || 'no pages'
  }, ${iterationBytes(it)} bytes`;
}

export function compareModels(a: StreamModel, b: StreamModel): Difference {
  const d: Difference = { iteration: null, record: null, device: null };
  const ia = a.summary.iterations;
  const ib = b.summary.iterations;
  for (let i = 0; i < Math.max(ia.length, ib.length); i++) {
    const x = ia[i];
    const y = ib[i];
    if (!x || !y || x.kind !== y.kind || KINDS.some((k) => x[k].pages !== y[k].pages || x[k].bytes !== y[k].bytes)) {
      d.iteration = { index: i, a: describeIteration(a, i), b: describeIteration(b, i) };
      break;
    }
  }
  const ra = a.records;
  const rb = b.records;
  for (let i = 0; i < Math.max(ra.count, rb.count); i++) {
    const x = recordRef(a, i);
    const y = recordRef(b, i);
    if (!x || !y || x.block !== y.block || x.offset !== y.offset || x.kind !== y.kind || ra.fill[i] !== rb.fill[i] || ra.hash[i] !== rb.hash[i]) {
      d.record = { index: i, a: x, b: y };
      break;
    }
  }
  const dev = (m: StreamModel, i: number): string => {
    const s = m.devices[i];
    return s ? `${s.idstr} instance ${s.instanceId} v${s.versionId}, ${s.size} bytes, data hash ${hex(m.deviceHashes[i]!, 8)}` : '(absent)';
  };
  for (let i = 0; i < Math.max(a.devices.length, b.devices.length); i++) {
    if (dev(a, i) !== dev(b, i)) {
      d.device = { index: i, a: dev(a, i), b: dev(b, i) };
      break;
    }
  }
  return d;
}

const describeRecord = (r: RecordRef | null): string =>
  r
    ? `RAM section ${r.iteration}, ${r.block} offset ${hex(r.offset)}, ${r.kind}${r.kind === 'zero' ? ` (fill ${hex(r.fill, 2)})` : ''}, ${r.wireBytes} bytes on the wire, payload hash ${hex(r.hash, 8)}`
    : '(no such record: the stream has fewer)';

/** What tells two records apart, most significant first. */
function recordDifference(a: RecordRef | null, b: RecordRef | null): string {
  if (!a || !b) return 'one stream ends before the other';
  if (a.block !== b.block || a.offset !== b.offset) return 'a different page';
  if (a.kind !== b.kind) return 'the same page, sent as a different kind of record';
  if (a.fill !== b.fill) return 'the same page, a different fill byte';
  return 'the same page and kind, a different payload';
}

export function compareView(a: StreamModel, b: StreamModel): HTMLElement {
  const d = compareModels(a, b);
  const row = (what: string, key: string, at: string | null, va: string, vb: string) =>
    h(
      'div',
      { class: 'diff', 'data-diff': key },
      h('h3', {}, what),
      at === null
        ? h('p', { class: 'same' }, 'identical')
        : h('div', {}, h('p', {}, h('strong', { 'data-diff-at': at }, at)), h('p', {}, h('b', {}, 'A: '), va), h('p', {}, h('b', {}, 'B: '), vb)),
    );
  return section(
    'compare',
    'Compare',
    h('p', {}, h('b', {}, 'A: '), `${a.name} (${a.records.count} page records)`, h('br'), h('b', {}, 'B: '), `${b.name} (${b.records.count} page records)`),
    row('first differing RAM section', 'iteration', d.iteration ? `#${d.iteration.index}` : null, d.iteration?.a ?? '', d.iteration?.b ?? ''),
    row(
      'first differing page record',
      'record',
      d.record ? `record ${d.record.index}: ${recordDifference(d.record.a, d.record.b)}` : null,
      describeRecord(d.record?.a ?? null),
      describeRecord(d.record?.b ?? null),
    ),
    row('first differing device section', 'device', d.device ? `section ${d.device.index}` : null, d.device?.a ?? '', d.device?.b ?? ''),
  );
}
