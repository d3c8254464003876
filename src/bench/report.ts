import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { BenchReport, BenchResult } from './runner.js';

const MiB = 1 << 20;

function mb(n: number | null): string {
  if (n === null) return '–';
  return n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2);
}

function pct(n: number | null | undefined): string {
  return n === null || n === undefined ? '–' : `${(n * 100).toFixed(n < 0.1 ? 2 : 1)}%`;
}

function bytes(n: number): string {
  return n >= MiB ? `${(n / MiB).toFixed(n % MiB === 0 ? 0 : 1)} MiB` : `${n} B`;
}

function workers(r: BenchResult): string {
  return r.workers === 0 ? 'main' : String(r.workers);
}

export const TABLE_HEADER = ['setting', 'workers', 'wire bytes', 'ratio', 'encode MB/s', 'decode MB/s', 'cache hits', 'round trip'];

export function resultRow(r: BenchResult): string[] {
  return [
    r.label,
    workers(r),
    r.wireBytes === null ? '–' : String(r.wireBytes),
    pct(r.ratio),
    mb(r.encodeMBps),
    mb(r.decodeMBps),
    r.cache ? pct(r.cache.hitRate) : '',
    r.roundTrip ? 'ok' : `FAILED: ${r.error ?? ''}`,
  ];
}

/** Left-aligned first column, right-aligned rest (as the other commands print). */
function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => (i === 0 || i === r.length - 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export function describeInput(report: BenchReport): string {
  const i = report.input;
  return `${i.iterations} dump${i.iterations === 1 ? '' : 's'} of ${bytes(i.dumpBytes)}${i.pageSelection ? ` (${i.pageSelection})` : ''}, RAMBlock ${i.idstr}: ${i.pagesSent.reduce((a, b) => a + b, 0)} pages sent (${i.pagesSent.join(' + ')}), raw page bytes ${i.rawBytes} (${(i.rawBytes / 1e6).toFixed(1)} MB)`;
}

export function describeMachine(report: BenchReport): string {
  const m = report.machine;
  const la = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');
  return `${m.cpus} CPUs (${m.cpuModel}), node ${m.node}, zlib ${m.zlib}; load average ${la(m.loadavgStart)} at start, ${la(m.loadavgEnd)} at end; best of ${report.runs} run${report.runs === 1 ? '' : 's'}`;
}

/** The stdout report: what was measured, the table, and how to read it. */
export function renderTable(report: BenchReport): string {
  return [
    describeInput(report),
    describeMachine(report),
    '',
    table([TABLE_HEADER, ...report.results.map(resultRow)]),
    '',
    'ratio: wire bytes / raw page bytes; MB/s: raw page bytes (1e6) per second of wall time; workers "main": no worker threads',
  ].join('\n');
}

/** The same table as GitHub markdown (for docs). */
export function renderMarkdown(report: BenchReport): string {
  const rows = report.results.map(resultRow);
  const head = `| ${TABLE_HEADER.join(' | ')} |`;
  const align = `|${TABLE_HEADER.map((_, i) => (i === 0 || i === TABLE_HEADER.length - 1 ? '---' : '---:')).join('|')}|`;
  return [head, align, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

export interface ChartLibrary {
  name: string;
  version: string;
  source: string;
}

/** Chart.js's UMD build from node_modules (a dependency pinned in package.json), for inlining. */
export function loadChartLibrary(): ChartLibrary {
  const require = createRequire(import.meta.url);
  let main: string;
  try {
    main = require.resolve('chart.js'); // …/chart.js/dist/chart.cjs
  } catch {
    // an optional peer dependency: only the HTML report needs it
    throw new Error('the --html report inlines Chart.js: install it next to migstream (npm install chart.js@4)');
  }
  const dir = dirname(main);
  const pkg = JSON.parse(readFileSync(join(dir, '..', 'package.json'), 'utf8')) as { version: string };
  const source = readFileSync(join(dir, 'chart.umd.min.js'), 'utf8').replace(/\n\/\/# sourceMappingURL=\S*\s*$/, '\n');
  return { name: 'Chart.js', version: pkg.version, source };
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Text safe inside <script>: no "</script" or "<!--" can end it early. */
function scriptSafe(s: string): string {
  return s.replace(/<\/(script)/gi, '<\\/$1').replace(/<!--/g, '<\\!--');
}

const CHART_CODE = String.raw`
(function () {
  var report = JSON.parse(document.getElementById('bench-data').textContent);
  var colours = { plain: '#6b7280', zlib: '#2563eb', lz4: '#059669', xbzrle: '#d97706', 'xbzrle+lz4': '#7c3aed', 'xbzrle+zlib': '#db2777' };
  var ok = report.results.filter(function (r) { return r.roundTrip; });
  function name(r) { return r.label + (r.workers ? ' · ' + r.workers + (r.workers === 1 ? ' worker' : ' workers') : ''); }
  function fade(hex, a) {
    var n = parseInt(hex.slice(1), 16);
    return 'rgba(' + (n >> 16) + ',' + ((n >> 8) & 255) + ',' + (n & 255) + ',' + a + ')';
  }
  Chart.defaults.animation = false;
  Chart.defaults.font.family = 'system-ui, sans-serif';
  Chart.defaults.maintainAspectRatio = false;
  var labels = ok.map(name);
  var legend = document.getElementById('legend');
  Object.keys(colours).forEach(function (g) {
    if (!ok.some(function (r) { return r.group === g; })) return;
    var item = document.createElement('span');
    item.innerHTML = '<i style="background:' + colours[g] + '"></i>' + g;
    legend.appendChild(item);
  });
  new Chart(document.getElementById('chart-wire'), {
    type: 'bar',
    data: { labels: labels, datasets: [{ label: 'wire bytes, % of raw page bytes', data: ok.map(function (r) { return +(r.ratio * 100).toFixed(2); }),
      backgroundColor: ok.map(function (r) { return colours[r.group]; }) }] },
    options: { indexAxis: 'y', plugins: { legend: { display: false }, tooltip: { callbacks: { label: function (c) {
      var r = ok[c.dataIndex]; return c.parsed.x + '% (' + r.wireBytes.toLocaleString('en') + ' bytes)'; } } } },
      scales: { x: { beginAtZero: true, title: { display: true, text: 'wire bytes, % of raw page bytes (lower is better)' } }, y: { ticks: { autoSkip: false } } } }
  });
  function speedChart(id, key, text) {
    new Chart(document.getElementById(id), {
      type: 'bar',
      data: { labels: labels, datasets: [{ label: text, data: ok.map(function (r) { return +r[key].toFixed(1); }),
        backgroundColor: ok.map(function (r) { return colours[r.group]; }) }] },
      options: { indexAxis: 'y', plugins: { legend: { display: false } },
        scales: { x: { beginAtZero: true, title: { display: true, text: text + ' of raw page bytes (higher is better)' } }, y: { ticks: { autoSkip: false } } } }
    });
  }
  speedChart('chart-encode', 'encodeMBps', 'encode MB/s');
  speedChart('chart-decode', 'decodeMBps', 'decode MB/s');
  var groups = [];
  ok.forEach(function (r) { if (groups.indexOf(r.group) < 0) groups.push(r.group); });
  new Chart(document.getElementById('chart-tradeoff'), {
    type: 'scatter',
    data: { datasets: groups.map(function (g) {
      var rs = ok.filter(function (r) { return r.group === g; });
      return { label: g, backgroundColor: colours[g], borderColor: colours[g], pointRadius: 6, pointHoverRadius: 8,
        data: rs.map(function (r) { return { x: +(r.ratio * 100).toFixed(2), y: +r.encodeMBps.toFixed(1), name: name(r) }; }) };
    }) },
    options: { plugins: { tooltip: { callbacks: { label: function (c) { return c.raw.name + ': ' + c.raw.x + '%, ' + c.raw.y + ' MB/s'; } } } },
      scales: { x: { beginAtZero: true, title: { display: true, text: 'wire bytes, % of raw page bytes' } },
        y: { beginAtZero: true, title: { display: true, text: 'encode MB/s' } } } }
  });
  document.getElementById('rendered').textContent = 'charts rendered by ' + 'Chart.js ' + Chart.version;
})();
`;

/** The <head> of the HTML reports (bench, plan): house style, Chart.js inlined so the page opens offline. */
export function reportHead(tool: string, version: string, date: string, lib: ChartLibrary, css: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="migstream ${escapeHtml(tool)} ${escapeHtml(version)}; ${lib.name} ${lib.version} inlined">
<title>migstream ${escapeHtml(tool)}: ${escapeHtml(date)}</title>
<style>
  body { font: 14px/1.45 system-ui, sans-serif; color: #1f2937; margin: 24px auto; max-width: 1100px; padding: 0 16px; }
  h1 { font-size: 22px; margin-bottom: 4px; }
  h2 { font-size: 17px; margin-top: 28px; }
  .meta { color: #4b5563; margin: 2px 0; }
  code { background: #f3f4f6; padding: 1px 4px; border-radius: 3px; }
  table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
  th, td { padding: 3px 8px; border-bottom: 1px solid #e5e7eb; text-align: right; white-space: nowrap; }
  th { background: #f9fafb; }
  tr.bad td { color: #b91c1c; }
  dt { font-weight: 600; margin-top: 6px; }
  dd { margin-left: 16px; color: #374151; }
  #rendered { color: #9ca3af; font-size: 12px; }
${css}
</style>
<script>/* ${lib.name} v${lib.version}, MIT License, https://www.chartjs.org: inlined so this page opens offline */
${scriptSafe(lib.source)}
</script>
</head>
`;
}

/** The end of the HTML reports: every setting's row, the definitions, the report as JSON, the chart code. */
export function reportTail(header: string[], rows: string, definitions: Record<string, string>, dataId: string, data: unknown, chartCode: string): string {
  const defs = Object.entries(definitions)
    .map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd>`)
    .join('');
  return `<h2>All settings</h2>
<table>
<thead><tr>${header.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead>
<tbody>
${rows}
</tbody>
</table>
<h2>Definitions</h2>
<dl>${defs}</dl>
<p id="rendered">charts not rendered (JavaScript off?)</p>
<script type="application/json" id="${dataId}">${JSON.stringify(data).replace(/</g, '\\u003c')}</script>
<script>${scriptSafe(chartCode)}</script>
</body>
</html>
`;
}

const BENCH_CSS = `  .chart { position: relative; width: 100%; }
  th:first-child, td:first-child, th:last-child, td:last-child { text-align: left; }
  .legend span { margin-right: 14px; white-space: nowrap; }
  .legend i { display: inline-block; width: 12px; height: 12px; margin-right: 5px; vertical-align: -1px; border-radius: 2px; }`;

/** A self-contained HTML report: the table, three charts, Chart.js inlined (opens offline). */
export function renderHtml(report: BenchReport, lib: ChartLibrary = loadChartLibrary()): string {
  const ok = report.results.filter((r) => r.roundTrip).length;
  const barHeight = Math.max(160, 40 + ok * 24);
  const rows = report.results
    .map(
      (r) =>
        `<tr${r.roundTrip ? '' : ' class="bad"'}>${resultRow(r)
          .map((c) => `<td>${escapeHtml(c)}</td>`)
          .join('')}</tr>`,
    )
    .join('\n');
  return `${reportHead('bench', report.version, report.date, lib, BENCH_CSS)}<body>
<h1>migstream bench</h1>
<p class="meta"><code>${escapeHtml(report.command)}</code></p>
<p class="meta">${escapeHtml(describeInput(report))}</p>
<p class="meta">${escapeHtml(describeMachine(report))}; ${escapeHtml(report.date)}</p>
<p class="meta">Every number here was measured in this run. On a machine shared with other jobs the MB/s vary from run to run; byte counts do not.</p>
<p id="legend" class="legend"></p>
<h2>Bytes on the wire</h2>
<div class="chart" style="height:${barHeight}px"><canvas id="chart-wire" role="img" aria-label="wire bytes per setting"></canvas></div>
<h2>Encode throughput</h2>
<div class="chart" style="height:${barHeight}px"><canvas id="chart-encode" role="img" aria-label="encode MB/s per setting"></canvas></div>
<h2>Decode throughput</h2>
<div class="chart" style="height:${barHeight}px"><canvas id="chart-decode" role="img" aria-label="decode MB/s per setting"></canvas></div>
<h2>Size against speed</h2>
<div class="chart" style="height:380px"><canvas id="chart-tradeoff" role="img" aria-label="wire bytes against encode speed"></canvas></div>
${reportTail(TABLE_HEADER, rows, report.definitions, 'bench-data', report, CHART_CODE)}`;
}
