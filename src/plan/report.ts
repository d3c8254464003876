import { escapeHtml, loadChartLibrary, reportHead, reportTail, type ChartLibrary } from '../bench/report.js';
import type { DirtyRateReport } from './dirty-rate.js';
import type { PlanOutcome } from './plan.js';
import type { PlanResult } from './simulate.js';

const MiB = 1 << 20;

/** Everything `migstream plan --json` prints. */
export interface PlanReport extends PlanOutcome {
  tool: 'migstream plan';
  version: string;
  date: string;
  command: string;
  input: { dumps: string[]; pages: number; pageSize: number; interval: number };
  link: {
    bandwidth: number;
    downtimeLimitMs: number;
    throttle: 'auto' | 'none';
    throttleResponse?: number;
    deferHot: number;
    timeCap: number;
    cores?: number | null;
    vcpus?: number | null;
  };
  dirtyRate: DirtyRateReport;
  definitions: Record<string, string>;
}

export const PLAN_DEFINITIONS: Record<string, string> = {
  converged: "QEMU 7.2's rule: after a dirty-bitmap sync, the dirty pages × 4096 are below bandwidth estimate × downtime limit",
  rounds: 'passes over the dirty bitmap, the first full pass included; a pass ends at the sync QEMU makes when what is left drops below the threshold',
  dirtySyncCount: "QEMU's dirty-sync-count at the end: the setup sync, one per pass, the stop-and-copy's",
  wireBytes:
    'bytes of the migration stream our encoder writes for exactly the pages sent, stop-and-copy included (RAM only: no device state, no other RAMBlocks)',
  downtimeMs: 'stop-and-copy bytes at the bandwidth, or its pages at the codec speed when that is slower (device state not counted)',
  codecRate: 'pages per second the setting encodes on this machine (single thread × workers up to the CPU count); bulk = first pass, delta = later passes',
  trace:
    'guest time between snapshots is replayed forwards then backwards past its end; a page that changed in an interval changes once at a fixed hashed moment inside it, a page that changed in every interval is dirtied all the time',
};

function secs(s: number): string {
  return s >= 100 ? s.toFixed(0) : s.toFixed(1);
}

export function resultRow(r: PlanResult): string[] {
  return [
    r.setting.label,
    r.converged ? 'yes' : 'no',
    String(r.rounds.length),
    String(r.dirtySyncCount),
    `${secs(r.totalTime)} s`,
    `${(r.wireBytes / MiB).toFixed(1)} MiB`,
    r.final ? `${r.final.downtimeMs.toFixed(0)} ms` : '–',
    r.throttle.final ? `${r.throttle.final}%` : '–',
    `${fmtRate(r.codecRate.bulk)} / ${fmtRate(r.codecRate.delta)}`,
  ];
}

function fmtRate(n: number): string {
  return Number.isFinite(n) ? `${Math.round(n)}` : '∞';
}

export const PLAN_HEADER = ['setting', 'converges', 'rounds', 'syncs', 'total', 'on the wire', 'downtime', 'throttle', 'codec pages/s'];

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export function describeLink(report: PlanReport): string {
  const l = report.link;
  return `link ${(l.bandwidth / MiB).toFixed(l.bandwidth % MiB ? 1 : 0)} MiB/s, downtime limit ${l.downtimeLimitMs} ms, auto-converge ${l.throttle === 'auto' ? `on${l.throttleResponse !== undefined && l.throttleResponse !== 1 ? ` (guest at (1 − p)^${l.throttleResponse})` : ''}` : 'off'}${l.deferHot ? `, hot pages (dirty in ${l.deferHot} syncs running) held back` : ''}, cap ${l.timeCap} s${l.cores ? `, ${l.cores} host core${l.cores > 1 ? 's' : ''}` : ''}${l.vcpus != null ? ` shared with ${l.vcpus} busy vCPU${l.vcpus === 1 ? '' : 's'}` : ''}`;
}

export function describeTrace(report: PlanReport): string {
  const d = report.dirtyRate;
  return `${report.input.dumps.length} dumps ${report.input.interval} s apart, ${d.pages} pages: ${d.mean.pages.toFixed(0)} pages (${d.mean.mibPerSecond.toFixed(2)} MiB/s) change per interval; working set ${d.workingSet.total} pages, ${d.workingSet.hot} hot`;
}

export function renderPlanTable(report: PlanReport): string {
  const rec = report.recommended ? `recommended: ${report.recommended.label}: ${report.recommended.why}` : `recommended: none (${report.advice})`;
  return [describeTrace(report), describeLink(report), '', table([PLAN_HEADER, ...report.results.map(resultRow)]), '', rec].join('\n');
}

const CHART_CODE = String.raw`
(function () {
  var report = JSON.parse(document.getElementById('plan-data').textContent);
  var palette = ['#2563eb', '#059669', '#d97706', '#7c3aed', '#db2777', '#6b7280', '#0891b2', '#65a30d'];
  Chart.defaults.animation = false;
  Chart.defaults.font.family = 'system-ui, sans-serif';
  Chart.defaults.maintainAspectRatio = false;
  new Chart(document.getElementById('chart-rounds'), {
    type: 'line',
    data: { datasets: report.results.map(function (r, i) {
      var pts = [{ x: 0, y: 0 }], sum = 0;
      r.rounds.forEach(function (d) { sum += d.wireBytes; pts.push({ x: +d.end.toFixed(2), y: +(sum / 1048576).toFixed(2) }); });
      if (r.final) pts.push({ x: +r.totalTime.toFixed(2), y: +(r.wireBytes / 1048576).toFixed(2) });
      return { label: r.setting.label + (r.converged ? '' : ' (does not converge)'), data: pts, borderColor: palette[i % palette.length],
        backgroundColor: palette[i % palette.length], borderDash: r.converged ? [] : [6, 4], pointRadius: 2, stepped: false };
    }) },
    options: { scales: { x: { type: 'linear', title: { display: true, text: 'seconds since the start' } },
      y: { beginAtZero: true, title: { display: true, text: 'MiB on the wire (cumulative, one point per round)' } } } }
  });
  new Chart(document.getElementById('chart-pending'), {
    type: 'line',
    data: { datasets: report.results.map(function (r, i) {
      return { label: r.setting.label, data: r.rounds.map(function (d) { return { x: +d.end.toFixed(2), y: d.pendingAfterSync }; }),
        borderColor: palette[i % palette.length], backgroundColor: palette[i % palette.length], pointRadius: 2 };
    }) },
    options: { scales: { x: { type: 'linear', title: { display: true, text: 'seconds since the start' } },
      y: { beginAtZero: true, title: { display: true, text: 'dirty pages after each sync' } } } }
  });
  document.getElementById('rendered').textContent = 'charts rendered by Chart.js ' + Chart.version;
})();
`;

const PLAN_CSS = `  .chart { position: relative; width: 100%; height: 380px; }
  th:first-child, td:first-child { text-align: left; }`;

/** A self-contained HTML report in the family of `bench --html`: table, two charts, Chart.js inlined. */
export function renderPlanHtml(report: PlanReport, lib: ChartLibrary = loadChartLibrary()): string {
  const rows = report.results
    .map(
      (r) =>
        `<tr${r.converged ? '' : ' class="bad"'}>${resultRow(r)
          .map((c) => `<td>${escapeHtml(c)}</td>`)
          .join('')}</tr>`,
    )
    .join('\n');
  const rec = report.recommended
    ? `<b>${escapeHtml(report.recommended.label)}</b>: ${escapeHtml(report.recommended.why)}`
    : `none: ${escapeHtml(report.advice ?? '')}`;
  return `${reportHead('plan', report.version, report.date, lib, PLAN_CSS)}<body>
<h1>migstream plan</h1>
<p class="meta"><code>${escapeHtml(report.command)}</code></p>
<p class="meta">${escapeHtml(describeTrace(report))}</p>
<p class="meta">${escapeHtml(describeLink(report))}; ${escapeHtml(report.date)}</p>
<p>Recommended: ${rec}</p>
<h2>Bytes on the wire over time</h2>
<div class="chart"><canvas id="chart-rounds" role="img" aria-label="cumulative bytes per round"></canvas></div>
<h2>Dirty pages left after each sync</h2>
<div class="chart"><canvas id="chart-pending" role="img" aria-label="dirty pages after each sync"></canvas></div>
${reportTail(PLAN_HEADER, rows, report.definitions, 'plan-data', report, CHART_CODE)}`;
}
