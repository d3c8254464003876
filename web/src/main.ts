// The inspector page: pick or drop a stream, decode it in a worker, render what it holds.
import { BarController, BarElement, CategoryScale, Chart, Legend, LinearScale, LineController, LineElement, PointElement, Tooltip } from 'chart.js';
import type { StreamSummary } from '../../src/stream/stats.js';
import { compareView } from './compare.js';
import { count, formatBytes, h, hex, section, table } from './dom.js';
import { HeatMap, type HeatMode, KIND_COLOURS, legend } from './heatmap.js';
import { hexView } from './hex.js';
import { type FromWorker, KINDS, type StreamModel, type ToWorker } from './protocol.js';
import { block, devices, errorBox, extensions, iterationBytes, iterationTable, overview } from './views.js';

declare const WORKER_SOURCE: string;

Chart.register(BarController, BarElement, CategoryScale, LinearScale, LineController, LineElement, PointElement, Legend, Tooltip);
Chart.defaults.animation = false;
Chart.defaults.font.family = 'system-ui, sans-serif';

const worker = new Worker(URL.createObjectURL(new Blob([WORKER_SOURCE], { type: 'text/javascript' })));
let nextId = 100;
const waiting = new Map<number, (m: FromWorker) => void>();
const progressOf = new Map<number, (bytes: number, total: number) => void>();
worker.onmessage = (e: MessageEvent<FromWorker>) => {
  const m = e.data;
  if (m.type === 'progress') return progressOf.get(m.id)?.(m.bytes, m.total);
  const done = waiting.get(m.id);
  waiting.delete(m.id);
  done?.(m);
};
function ask(msg: ToWorker): Promise<FromWorker> {
  return new Promise((resolve) => {
    waiting.set(msg.id, resolve);
    worker.postMessage(msg);
  });
}

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const main = $('content');
const status = $('status');
const bar = $<HTMLProgressElement>('progress');
let current: StreamModel | null = null;
let chart: Chart | null = null;

async function decode(file: File, slot: 0 | 1): Promise<StreamModel> {
  bar.hidden = false;
  bar.value = 0;
  bar.max = Math.max(1, file.size);
  const t0 = performance.now();
  progressOf.set(slot, (bytes, total) => {
    bar.value = bytes;
    status.textContent = `decoding ${file.name}: ${formatBytes(bytes)} of ${formatBytes(total)}`;
  });
  const r = await ask({ type: 'decode', id: slot, file, name: file.name });
  progressOf.delete(slot);
  bar.hidden = true;
  if (r.type !== 'done') throw new Error(r.type === 'failed' ? r.message : 'unexpected answer');
  status.textContent = `${file.name}: ${r.model.records.count} page records, ${formatBytes(file.size)} decoded in ${((performance.now() - t0) / 1000).toFixed(1)} s${r.model.error ? ` — stopped by ${r.model.error.code} at byte ${r.model.error.offset}` : ''}`;
  status.dataset.state = r.model.error ? 'error' : 'done';
  return r.model;
}

function timeline(m: StreamModel): HTMLElement {
  const canvas = h('canvas', { role: 'img', 'aria-label': 'page records per RAM section by kind, and wire bytes' });
  const out = section('timeline', 'Iterations', h('div', { class: 'chart' }, canvas), iterationTable(m));
  queueMicrotask(() => {
    chart?.destroy();
    const its = m.summary.iterations;
    chart = new Chart(canvas, {
      type: 'bar',
      data: {
        labels: its.map((it) => `#${it.index}`),
        datasets: [
          ...KINDS.map((k, i) => ({
            type: 'bar' as const,
            label: k,
            data: its.map((it) => it[k].pages),
            backgroundColor: KIND_COLOURS[i],
            stack: 'pages',
            yAxisID: 'y',
          })),
          {
            type: 'line' as const,
            label: 'MiB on the wire',
            data: its.map((it) => iterationBytes(it) / 1048576),
            borderColor: '#111827',
            backgroundColor: '#111827',
            pointRadius: its.length > 100 ? 0 : 2,
            yAxisID: 'y2',
          },
        ],
      },
      options: {
        maintainAspectRatio: false,
        scales: {
          x: { stacked: true, title: { display: true, text: 'RAM section (iteration)' } },
          y: { stacked: true, beginAtZero: true, title: { display: true, text: 'page records' } },
          y2: { position: 'right', beginAtZero: true, grid: { drawOnChartArea: false }, title: { display: true, text: 'MiB' } },
        },
      },
    });
  });
  return out;
}

function pageMap(m: StreamModel): HTMLElement {
  const out = section('pages', 'Page map');
  if (!m.sent.length) {
    out.append(h('p', { class: 'muted' }, m.layout.length ? 'Open the stream file itself to see its page map.' : 'The stream announces no RAMBlocks.'));
    return out;
  }
  let mode: HeatMode = 'sent';
  const maps: HeatMap[] = [];
  const details = h(
    'div',
    { class: 'pagedetails', 'aria-live': 'polite' },
    h('p', { class: 'muted' }, 'Click a page (or focus a map, move with the arrow keys, press Enter) to see its records and final content.'),
  );
  const select = async (page: number) => {
    const l = m.layout.find((x) => page >= x.firstPage && page < x.firstPage + x.pages)!;
    const offset = (page - l.firstPage) * m.summary.pageSize;
    const r = m.records;
    const rows: (string | number | HTMLElement)[][] = [];
    for (let i = 0; i < r.count; i++)
      if (r.page[i] === page) rows.push([i, r.iteration[i]!, KINDS[r.kind[i]!]!, r.dataOffset[i]! || '', r.dataLength[i]!, r.wireBytes[i]!]);
    const hexBox = h('div', {}, h('p', { class: 'muted' }, 'reading the page…'));
    details.replaceChildren(
      h('h3', { 'data-page': `${l.idstr}@${offset}` }, h('code', {}, l.idstr), ` offset ${hex(offset)} (${offset})`),
      h('p', {}, `sent `, count('page.sent', m.sent[page]!), ` time${m.sent[page] === 1 ? '' : 's'}`),
      table(['record', 'section', 'kind', 'payload at', 'payload', 'wire'], rows.slice(0, 200), {
        'aria-label': 'records of the page: index, RAM section, kind, payload stream offset, payload bytes, wire bytes',
      }),
      ...(rows.length > 200 ? [h('p', { class: 'muted' }, `first 200 of ${rows.length} records shown`)] : []),
      hexBox,
    );
    const a = await ask({ type: 'page', id: nextId++, slot: 0, page });
    if (a.type !== 'page') return;
    hexBox.replaceChildren(
      a.content
        ? h('div', {}, h('h4', {}, 'final content'), hexView(a.content, offset, undefined, `content of ${l.idstr} at ${hex(offset)}`))
        : h('p', { class: 'warn' }, `cannot rebuild the page: ${a.error}`),
    );
  };
  const modeSel = h(
    'select',
    { id: 'heatmode', 'aria-label': 'colour pages by' },
    h('option', { value: 'sent' }, 'times sent'),
    h('option', { value: 'last' }, 'kind of last record'),
  );
  const legendBox = h('div', {});
  const maxSent = m.sent.reduce((a, b) => Math.max(a, b), 1);
  legendBox.append(legend(mode, maxSent));
  modeSel.addEventListener('change', () => {
    mode = modeSel.value as HeatMode;
    for (const x of maps) x.setMode(mode);
    legendBox.replaceChildren(legend(mode, maxSent));
  });
  const blockSel = h('select', { id: 'goto-block', 'aria-label': 'RAMBlock' }, ...m.layout.map((l, i) => h('option', { value: i }, l.idstr)));
  const offsetIn = h('input', {
    id: 'goto-offset',
    type: 'text',
    inputmode: 'text',
    placeholder: 'offset, e.g. 0x800000',
    'aria-label': 'offset in the RAMBlock',
    size: 16,
  });
  const go = h(
    'form',
    { class: 'goto' },
    h('label', {}, 'colour by ', modeSel),
    ' ',
    h('label', {}, 'go to ', blockSel),
    ' ',
    offsetIn,
    ' ',
    h('button', { type: 'submit' }, 'show page'),
  );
  go.addEventListener('submit', (e) => {
    e.preventDefault();
    const off = Number(offsetIn.value.trim());
    const l = m.layout[Number(blockSel.value)]!;
    if (Number.isFinite(off) && off >= 0 && off < l.length) maps[Number(blockSel.value)]!.selectOffset(off);
    else details.replaceChildren(h('p', { class: 'warn' }, `offset ${offsetIn.value} is not inside ${l.idstr} (0..${hex(l.length - 1)})`));
  });
  let recordsTotal = 0;
  let mapTotal = 0;
  const grid = h('div', { class: 'maps' });
  for (const l of m.layout) {
    let sum = 0;
    let pagesSent = 0;
    for (let p = l.firstPage; p < l.firstPage + l.pages; p++) {
      sum += m.sent[p]!;
      if (m.sent[p]) pagesSent++;
    }
    mapTotal += sum;
    const hm = new HeatMap(m, l, mode, { onSelect: select });
    maps.push(hm);
    grid.append(
      h(
        'figure',
        {},
        h(
          'figcaption',
          {},
          h('code', {}, l.idstr),
          ` ${formatBytes(l.length)}: `,
          count(`pagemap.${l.idstr}.records`, sum),
          ` records, ${pagesSent} of ${l.pages} pages sent${hm.pagesPerCell > 1 ? ` (${hm.pagesPerCell} pages per cell)` : ''}`,
        ),
        hm.el,
      ),
    );
  }
  recordsTotal = m.records.count;
  out.append(
    h('p', {}, 'page map total: ', count('pagemap.total', mapTotal), ' records (record table: ', count('records.total', recordsTotal), ')'),
    go,
    legendBox,
    h('div', { class: 'pagegrid' }, grid, details),
  );
  return out;
}

/** `fromFile`: the worker holds the stream (hex views, compare); false for an embedded summary. */
function render(m: StreamModel, fromFile = true): void {
  current = m;
  const onHex = async (start: number, length: number, into: HTMLElement) => {
    const a = await ask({ type: 'bytes', id: nextId++, slot: 0, start, length });
    if (a.type === 'bytes') into.replaceChildren(hexView(a.bytes, a.start, start, 'section bytes'));
  };
  const parts = [errorBox(m), overview(m), timeline(m), pageMap(m), devices(m, fromFile ? onHex : undefined), block(m), extensions(m)].filter(
    (x): x is HTMLElement => x !== null,
  );
  main.replaceChildren(...parts);
  $('nav').hidden = false;
  $('compare-pick').hidden = !fromFile;
  $('nav-error').hidden = !m.error;
  document.title = `${m.name} — migstream inspector`;
}

async function open(file: File): Promise<void> {
  try {
    render(await decode(file, 0));
  } catch (e) {
    status.textContent = `failed: ${e instanceof Error ? e.message : String(e)}`;
    status.dataset.state = 'failed';
  }
}

async function openCompare(file: File): Promise<void> {
  if (!current) return;
  const a = current;
  const b = await decode(file, 1);
  current = a;
  document.getElementById('compare')?.remove();
  const view = compareView(a, b);
  main.prepend(view);
  view.querySelector('h2')?.focus();
  status.textContent = `compared ${a.name} with ${b.name}`;
  status.dataset.state = 'compared';
}

const input = $<HTMLInputElement>('file');
input.addEventListener('change', () => input.files?.[0] && open(input.files[0]));
const cmp = $<HTMLInputElement>('compare-file');
cmp.addEventListener('change', () => cmp.files?.[0] && openCompare(cmp.files[0]));
const drop = $('drop');
for (const t of ['dragenter', 'dragover'])
  document.addEventListener(t, (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
document.addEventListener('dragleave', () => drop.classList.remove('over'));
document.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  const f = e.dataTransfer?.files[0];
  if (f) open(f);
});

// `migstream inspect STREAM --html FILE` embeds the stream's summary: render it without the file.
const embedded = document.getElementById('migstream-summary');
if (embedded?.textContent?.trim()) {
  const e = JSON.parse(embedded.textContent) as { name: string; summary: StreamSummary };
  const s = e.summary;
  let first = 0;
  render(
    {
      name: e.name,
      fileBytes: s.streamBytes,
      summary: s,
      uuid: null,
      targetPageBits: null,
      layout: s.ramBlocks.map((b) => {
        const l = { idstr: b.idstr, length: b.length, firstPage: first, pages: Math.ceil(b.length / s.pageSize) };
        first += l.pages;
        return l;
      }),
      sent: new Uint32Array(0),
      how: new Uint8Array(0),
      last: new Uint8Array(0),
      records: {
        count: 0,
        page: new Uint32Array(0),
        kind: new Uint8Array(0),
        iteration: new Uint32Array(0),
        dataOffset: new Float64Array(0),
        dataLength: new Uint32Array(0),
        fill: new Uint8Array(0),
        wireBytes: new Uint32Array(0),
        hash: new Uint32Array(0),
      },
      sections: [],
      sectionsTotal: 0,
      chunks: [],
      chunksTotal: 0,
      digests: [],
      commands: [],
      manifest: s.manifest,
      devices: (s.devices ?? []).map((d) => ({ ...d, sectionId: -1 })),
      deviceHashes: [],
      vmdesc: undefined,
      warnings: s.warnings,
      error: null,
    },
    false,
  );
  status.textContent = `summary of ${e.name} embedded by migstream inspect --html; open the stream file for its page map and hex views`;
  status.dataset.state = 'embedded';
}
