// The inspector's sections, rendered from a StreamModel (decoded in the page) or from an embedded summary alone.
import type { IterationStats } from '../../src/stream/stats.js';
import { count, formatBytes, h, hex, section, table } from './dom.js';
import { hexView } from './hex.js';
import { KINDS, type StreamModel } from './protocol.js';

const MAX_ROWS = 300;

export function iterationBytes(it: IterationStats): number {
  return KINDS.reduce((n, k) => n + it[k].bytes, 0);
}

export function overview(m: StreamModel): HTMLElement {
  const s = m.summary;
  const ram = s.ramBlocks.reduce((n, b) => n + b.length, 0);
  const facts: [string, Node | string][] = [
    ['file', `${m.name} (${formatBytes(m.fileBytes)}, ${m.fileBytes} bytes)`],
    ['stream version', String(s.version)],
    ['machine', s.machine ?? '(no configuration section)'],
    ['page size', `${s.pageSize} bytes${m.targetPageBits !== null ? ` (target-page-bits ${m.targetPageBits})` : ''}`],
    ['capabilities', s.capabilities.length ? s.capabilities.join(', ') : '(none validated)'],
    ['uuid', m.uuid ?? '(not sent)'],
    ['RAM', h('span', {}, count('ramBlocks', s.ramBlocks.length), ` RAMBlocks, ${formatBytes(ram)}`)],
    ['RAM sections', count('iterations', s.iterations.length)],
    [
      'device sections',
      s.devices
        ? h('span', {}, count('devices', s.devices.length), s.vmdesc ? ` (vmdesc: ${s.vmdescBytes} bytes)` : ' (no vmdesc)')
        : `${s.deviceStateBytes} bytes, kept opaque`,
    ],
  ];
  const dl = h('dl', { class: 'facts' });
  for (const [k, v] of facts) dl.append(h('dt', {}, k), h('dd', {}, v));
  const t = s.totals;
  const totals = table(
    ['kind', 'records', 'wire bytes'],
    [
      ...KINDS.map((k) => [k, count(`totals.${k}.pages`, t[k].pages), count(`totals.${k}.bytes`, t[k].bytes)]),
      [
        'all',
        count(
          'totals.pages',
          KINDS.reduce((n, k) => n + t[k].pages, 0),
        ),
        KINDS.reduce((n, k) => n + t[k].bytes, 0),
      ],
    ],
    { 'aria-label': 'page records per kind' },
  );
  const comp = KINDS.filter((k) => k === 'compressed' || k === 'lz4')
    .map((k) => s.compression[k === 'lz4' ? 'lz4' : 'zlib'])
    .filter((c) => c.pages > 0)
    .map((c, i) =>
      h(
        'p',
        {},
        `${i === 0 && s.compression.zlib.pages ? 'zlib' : 'LZ4'} pages: ${c.pages}, payload ${c.payloadBytes} bytes, ratio ${(c.ratio * 100).toFixed(1)}%`,
      ),
    );
  const blocks = table(
    ['RAMBlock', 'size', 'bytes', 'pages'],
    s.ramBlocks.map((b) => [h('code', {}, b.idstr), formatBytes(b.length), b.length, Math.ceil(b.length / s.pageSize)]),
    { 'aria-label': 'RAMBlocks', 'data-table': 'ramblocks' },
  );
  const warnings = s.warnings.map((w) => h('p', { class: 'warn' }, `warning ${w.code} at byte ${w.offset}: ${w.message}`));
  return section('overview', 'Header, configuration, RAMBlocks', dl, ...warnings, h('div', { class: 'cols' }, totals, blocks), ...comp);
}

export function iterationTable(m: StreamModel): HTMLElement {
  const its = m.summary.iterations;
  const shown = its.length > MAX_ROWS ? [...its.slice(0, MAX_ROWS / 2), ...its.slice(-MAX_ROWS / 2)] : its;
  const rows = shown.map((it) => [it.index, it.kind, ...KINDS.map((k) => it[k].pages), iterationBytes(it)]);
  return h(
    'details',
    {},
    h('summary', {}, `iteration table (${its.length} RAM sections${its.length > MAX_ROWS ? `, first and last ${MAX_ROWS / 2} shown` : ''})`),
    table(['#', 'kind', ...KINDS, 'bytes'], rows, { 'aria-label': 'pages per RAM section' }),
  );
}

/** `onHex`: reads bytes of the stream file (absent for an embedded summary, which has no file). */
export function devices(m: StreamModel, onHex?: (start: number, length: number, into: HTMLElement) => void): HTMLElement {
  const s = m.summary;
  if (!s.devices)
    return section('devices', 'Device sections', h('p', {}, `The device state (${s.deviceStateBytes} bytes) was too large to split; kept opaque.`));
  const vm = m.vmdesc as { devices?: VmdescDevice[] } | undefined;
  const intro = h(
    'p',
    {},
    s.vmdesc
      ? `${s.devices.length} sections, split with the vmdesc trailer (${s.vmdescBytes} bytes); open one for its VMState fields.`
      : `${s.devices.length} sections, split without a vmdesc (the stream has none): names, versions and sizes only.`,
  );
  const list = h('div', { class: 'devices' });
  m.devices.forEach((d, i) => {
    const desc = vm?.devices?.find((v) => v.name === d.idstr && v.instance_id === d.instanceId);
    const body = h('div', { class: 'devbody' });
    if (desc) body.append(fields(desc));
    else
      body.append(
        h(
          'p',
          { class: 'muted' },
          !s.vmdesc
            ? 'no vmdesc: fields unknown'
            : vm
              ? 'the vmdesc does not describe this section'
              : 'open the stream file for the fields its vmdesc describes',
        ),
      );
    if (onHex) {
      const hexBox = h('div', {});
      const btn = h('button', { type: 'button' }, 'show the section (hex: header, data, footer)');
      btn.addEventListener('click', () => onHex(d.offset, d.size + 64, hexBox));
      body.append(btn, hexBox);
    }
    list.append(
      h(
        'details',
        { 'data-device': i },
        h('summary', {}, h('code', {}, d.idstr), ` instance ${d.instanceId}, version ${d.versionId}, ${d.size} bytes at ${d.offset} (${hex(d.offset)})`),
        body,
      ),
    );
  });
  return section('devices', 'Device sections', intro, list);
}

interface VmdescField {
  name: string;
  type: string;
  size: number;
  array_len?: number;
  struct?: { vmsd_name?: string; fields?: VmdescField[] };
  fields?: VmdescField[];
}
interface VmdescDevice {
  name: string;
  instance_id: number;
  vmsd_name?: string;
  version?: number;
  fields?: VmdescField[];
  subsections?: VmdescDevice[];
}

function fields(d: { vmsd_name?: string; version?: number; fields?: VmdescField[]; subsections?: VmdescDevice[] }): HTMLElement {
  const ul = h('ul', { class: 'fields' });
  for (const f of d.fields ?? []) {
    const li = h('li', {}, h('code', {}, f.name), ` ${f.type}, ${f.size} bytes${f.array_len ? ` × ${f.array_len}` : ''}`);
    if (f.struct) li.append(fields(f.struct));
    else if (f.fields) li.append(fields(f));
    ul.append(li);
  }
  for (const sub of d.subsections ?? []) ul.append(h('li', {}, `subsection ${sub.vmsd_name ?? sub.name} v${sub.version ?? '?'}`, fields(sub)));
  return ul;
}

export function block(m: StreamModel): HTMLElement {
  const s = m.summary;
  const out = section('block', 'Block devices and dirty bitmaps');
  if (!s.blockDevices.length && !s.dirtyBitmaps.length) {
    out.append(h('p', { class: 'muted' }, 'No block migration and no dirty bitmaps in this stream.'));
    return out;
  }
  if (s.blockDevices.length) {
    out.append(
      table(
        ['device', 'chunks', 'zero chunks', 'compressed', 'chunk sizes', 'payload bytes', 'extent'],
        s.blockDevices.map((d) => [
          h('code', {}, d.device),
          count(`block.${d.device}.chunks`, d.chunks),
          count(`block.${d.device}.zeroChunks`, d.zeroChunks),
          d.compressedChunks,
          d.chunkSizes.map(formatBytes).join(', '),
          d.bytes,
          formatBytes(d.extent),
        ]),
        { 'aria-label': 'block devices' },
      ),
    );
    const chunks = m.chunks.slice(0, MAX_ROWS);
    if (chunks.length)
      out.append(
        h(
          'details',
          {},
          h('summary', {}, `chunks (${m.chunksTotal}${m.chunksTotal > chunks.length ? `, first ${chunks.length} shown` : ''})`),
          table(
            ['device', 'section #', 'sector', 'device offset', 'length', 'zero', 'codec', 'stream offset'],
            chunks.map((c) => [c.device, c.section, c.sector, hex(c.sector * 512), formatBytes(c.length), c.zero ? 'yes' : '', c.codec ?? '', c.dataOffset]),
          ),
        ),
      );
  }
  if (s.dirtyBitmaps.length)
    out.append(
      h('h3', {}, 'dirty bitmaps'),
      table(
        ['node', 'bitmap', 'granularity', 'enabled', 'persistent', 'dirty bytes', 'complete'],
        s.dirtyBitmaps.map((b) => [
          b.node,
          b.bitmap,
          formatBytes(b.granularity),
          b.enabled ? 'yes' : 'no',
          b.persistent ? 'yes' : 'no',
          count(`bitmap.${b.node}/${b.bitmap}.dirtyBytes`, b.dirtyGranules * b.granularity),
          b.complete ? 'yes' : 'no',
        ]),
        { 'aria-label': 'dirty bitmaps', 'data-table': 'bitmaps' },
      ),
    );
  return out;
}

export function extensions(m: StreamModel): HTMLElement {
  const s = m.summary;
  const out = section('extensions', 'Extensions, digests, commands');
  const man = m.manifest ?? s.manifest;
  if (!man) out.append(h('p', { class: 'muted' }, 'No migstream extension manifest: a plain QEMU stream.'));
  else
    out.append(
      h('p', {}, `migstream extension manifest, format ${man.version}:`),
      table(
        ['extension', 'parameters'],
        man.extensions.map((e) => [h('code', {}, e.name), JSON.stringify(e.params)]),
        { class: 'text' },
      ),
    );
  if (s.digests) {
    const d = s.digests;
    out.append(
      h(
        'p',
        {},
        `iteration digests (${d.algorithm}): `,
        count('digests.records', d.records),
        ` records over ${d.pageRecords} page records, ${d.bytes} bytes (listed, not checked here: the page keeps no RAM; migstream inspect and verify check them)`,
      ),
    );
    if (m.digests.length)
      out.append(
        h(
          'details',
          {},
          h('summary', {}, `digest records (${m.digests.length > MAX_ROWS ? `first ${MAX_ROWS} shown` : m.digests.length})`),
          table(
            ['RAM section', 'RAMBlock', 'page records', 'digest', 'stream offset'],
            m.digests.slice(0, MAX_ROWS).map((x) => [x.iteration, x.block, x.count, h('code', {}, x.digest), x.offset]),
          ),
        ),
      );
  }
  const cmds = m.commands.length ? m.commands : s.commands.map((c) => ({ name: c.name, offset: null, length: c.length }));
  if (cmds.length)
    out.append(
      h('h3', {}, 'commands'),
      table(
        ['command', 'payload bytes', 'stream offset'],
        cmds.slice(0, MAX_ROWS).map((c) => [c.name, c.length, c.offset ?? '']),
      ),
    );
  return out;
}

export function errorBox(m: StreamModel): HTMLElement | null {
  const e = m.error;
  if (!e) return null;
  const ctx = Object.entries(e.context)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  return section(
    'error',
    'Decoding stopped: typed error',
    h(
      'div',
      { class: 'error', role: 'alert' },
      h(
        'p',
        {},
        h('strong', { 'data-error-code': e.code }, e.code),
        ' at byte ',
        h('strong', { 'data-error-offset': e.offset }, e.offset),
        ` (${hex(e.offset)})${ctx ? `, ${ctx}` : ''}`,
      ),
      h('p', {}, e.detail),
      h('p', { class: 'muted' }, `Everything above was decoded before the error (${m.records.count} page records).`),
    ),
    hexView(e.around, e.aroundStart, e.offset, 'bytes around the error'),
  );
}
