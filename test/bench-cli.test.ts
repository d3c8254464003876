import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { pageRanges } from '../src/cli/bench.js';
import { benchSettings, PLAIN } from '../src/bench/settings.js';
import { runBench } from '../src/bench/runner.js';
import { requireBuiltCli, runCli } from './support/cli.js';

const work = mkdtempSync(join(tmpdir(), 'migstream-bench-cli-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const run = runCli;

const PAGE = 4096;
const MiB = 1 << 20;

/**
 * Three 4 MiB dumps with a guest-like mix: zero pages, text-like pages that
 * compress, random pages that don't. Each later dump touches a few bytes of
 * the same "hot" pages (XBZRLE hits from the third dump on: QEMU caches pages
 * only after the first pass), rewrites some pages fully and zeroes a few.
 */
function syntheticDumps(): Uint8Array[] {
  let x = 12345;
  const rand = () => {
    x = (x + 0x6d2b79f5) >>> 0;
    let t = Math.imul(x ^ (x >>> 15), 1 | x);
    t ^= t + Math.imul(t ^ (t >>> 7), 61 | t);
    return (t ^ (t >>> 14)) >>> 0;
  };
  const words = ['migration', 'page', 'stream', 'kernel', 'qemu', 'zero', 'dirty', 'cache', '\n', ' '];
  const d0 = new Uint8Array(4 * MiB);
  for (let p = 0; p < d0.length / PAGE; p++) {
    const kind = p % 5;
    if (kind === 0 || kind === 3) continue; // zero
    const page = d0.subarray(p * PAGE, (p + 1) * PAGE);
    if (kind === 4) for (let i = 0; i < PAGE; i++) page[i] = rand() & 255;
    else {
      let at = 0;
      while (at < PAGE) {
        const w = words[rand() % words.length]!;
        for (let i = 0; i < w.length && at < PAGE; i++) page[at++] = w.charCodeAt(i);
      }
    }
  }
  const dumps = [d0];
  for (let k = 1; k < 3; k++) {
    const d = dumps[k - 1]!.slice();
    for (let p = 1; p < 1024; p += 7) d[p * PAGE + (rand() % PAGE)] ^= 0x55; // small changes
    for (let p = 2 + k; p < 1024; p += 31) for (let i = 0; i < PAGE; i++) d[p * PAGE + i] = rand() & 255; // rewritten
    for (let p = 4 + k; p < 1024; p += 97) d.fill(0, p * PAGE, (p + 1) * PAGE); // became zero
    dumps.push(d);
  }
  return dumps;
}

function changedPages(a: Uint8Array, b: Uint8Array): number {
  let n = 0;
  for (let o = 0; o < a.length; o += PAGE) if (Buffer.compare(a.subarray(o, o + PAGE), b.subarray(o, o + PAGE)) !== 0) n++;
  return n;
}

requireBuiltCli();

describe('migstream bench', () => {
  const dumps = syntheticDumps();
  const files = dumps.map((d, i) => {
    const f = join(work, `d${i}.ram`);
    writeFileSync(f, d);
    return f;
  });
  const [a, small4] = [files[0]!, files[1]!];

  it('--quick: a table, a JSON report and a self-contained HTML report; every setting round-trips', () => {
    const json = join(work, 'r.json');
    const html = join(work, 'r.html');
    const r = run(['bench', ...files, '--quick', '--json', json, '--html', html]);
    expect(r.code, r.stderr).toBe(0);

    const report = JSON.parse(readFileSync(json, 'utf8'));
    expect(Object.keys(report)).toEqual(['tool', 'version', 'date', 'command', 'machine', 'input', 'definitions', 'runs', 'results']);
    expect(report.tool).toBe('migstream bench');
    expect(report.command).toContain('--quick');
    expect(report.machine.cpus).toBeGreaterThan(0);
    expect(report.machine.loadavgStart).toHaveLength(3);
    expect(report.input).toMatchObject({ idstr: 'pc.ram', dumps: files, dumpBytes: 4 * MiB, pageSize: PAGE, iterations: 3, pagesLimit: null });
    // iteration 0 sends every page, the next ones the pages that changed
    const sent = [1024, changedPages(dumps[0]!, dumps[1]!), changedPages(dumps[1]!, dumps[2]!)];
    expect(report.input.pagesSent).toEqual(sent);
    expect(report.input.rawBytes).toBe((sent[0]! + sent[1]! + sent[2]!) * PAGE);

    const results = report.results as Record<string, any>[];
    expect(results.map((x) => x.id)).toEqual(benchSettings(4 * MiB, { quick: true }).map((s) => s.id));
    expect(new Set(results.map((x) => x.group))).toEqual(new Set(['plain', 'zlib', 'lz4', 'xbzrle', 'xbzrle+lz4']));
    for (const x of results) {
      expect(Object.keys(x)).toEqual(
        expect.arrayContaining([
          'id',
          'label',
          'group',
          'workers',
          'compress',
          'xbzrle',
          'roundTrip',
          'wireBytes',
          'ratio',
          'encodeMs',
          'decodeMs',
          'encodeMBps',
          'decodeMBps',
          'sha256',
          'records',
        ]),
      );
      expect(x.roundTrip, `${x.id}: ${x.error}`).toBe(true);
      expect(x.wireBytes).toBeGreaterThan(0);
      expect(x.ratio).toBeCloseTo(x.wireBytes / report.input.rawBytes, 12);
      expect(x.encodeMBps).toBeGreaterThan(0);
      expect(x.decodeMBps).toBeGreaterThan(0);
    }
    const byId = Object.fromEntries(results.map((x) => [x.id, x]));
    // compressed settings run on 1 and 2 workers and write the same stream on both
    expect(byId['zlib1-w1'].sha256).toBe(byId['zlib1-w2'].sha256);
    expect(byId['lz4a1-w1'].sha256).toBe(byId['lz4a1-w2'].sha256);
    expect(byId['zlib1-w1'].records.compressed).toBeGreaterThan(0);
    // compression and XBZRLE both beat zero detection alone on this mix
    for (const id of ['zlib1-w1', 'lz4a1-w1', 'xbzrle-1MiB-lru']) expect(byId[id].wireBytes).toBeLessThan(byId.plain.wireBytes);
    expect(byId['xbzrle-1MiB-lru'].cache.hitRate).toBeGreaterThan(0);
    expect(byId['xbzrle-1MiB-lru'].records.xbzrle).toBeGreaterThan(0);

    // stdout: the table; stderr (not a TTY here): one plain progress line per setting, no bar
    expect(r.stdout).toMatch(/^setting\s+workers\s+wire bytes\s+ratio\s+encode MB\/s\s+decode MB\/s/m);
    expect(r.stdout.match(/ ok$/gm)).toHaveLength(results.length);
    expect(r.stderr.match(/^bench \[\d+\/\d+ /gm)).toHaveLength(results.length);
    expect(r.stderr).not.toContain('\r');

    // HTML: Chart.js inlined (no external script), the same data embedded
    const page = readFileSync(html, 'utf8');
    expect(page).toContain('Chart.js v4.6.1');
    expect(page).toMatch(/<script>\/\* Chart\.js v4\.6\.1[\s\S]{150000,}?<\/script>/);
    expect(page).not.toMatch(/<script[^>]+src=/);
    expect(page).not.toContain('sourceMappingURL');
    const data = /<script type="application\/json" id="bench-data">([\s\S]*?)<\/script>/.exec(page);
    expect(data).not.toBeNull();
    expect(JSON.parse(data![1]!)).toEqual(report);
    for (const id of ['chart-wire', 'chart-encode', 'chart-decode', 'chart-tradeoff']) expect(page).toContain(`id="${id}"`);
    expect(page).toContain(String(byId.plain.wireBytes));
  });

  it('--json - writes the report to stdout instead of the table', () => {
    const r = run(['bench', ...files, '--quick', '--workers', '2', '--json', '-']);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.results.every((x: { roundTrip: boolean }) => x.roundTrip)).toBe(true);
    expect(report.results.filter((x: { workers: number }) => x.workers === 1)).toHaveLength(0);
  });

  it('usage errors exit 2: no dump, a partial page, sizes that differ, bad flags', () => {
    const odd = join(work, 'odd.ram');
    writeFileSync(odd, new Uint8Array(PAGE + 1));
    const small = join(work, 'small.ram');
    writeFileSync(small, new Uint8Array(2 * PAGE));
    for (const args of [
      ['bench'],
      ['bench', odd],
      ['bench', small4, small],
      ['bench', a, '--workers', 'x'],
      ['bench', a, '--runs', '0'],
      ['bench', a, '--frob'],
    ]) {
      const r = run(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/^migstream: /);
    }
    expect(run(['bench', join(work, 'missing.ram')]).code).toBe(1);
  });

  it('pageRanges: all pages, the first N, or runs of 64 spread over the dump', () => {
    expect(pageRanges(100, undefined, true)).toEqual([[0, 100 * PAGE]]);
    expect(pageRanges(100, 200, true)).toEqual([[0, 100 * PAGE]]);
    expect(pageRanges(1000, 10, false)).toEqual([[0, 10 * PAGE]]);
    const spread = pageRanges(65536, 2048, true);
    expect(spread).toHaveLength(32);
    expect(spread[0]).toEqual([0, 64 * PAGE]);
    expect(spread[31]).toEqual([(65536 - 64) * PAGE, 64 * PAGE]);
    for (let i = 1; i < spread.length; i++) expect(spread[i]![0]).toBeGreaterThanOrEqual(spread[i - 1]![0] + 64 * PAGE);
  });

  it('refuses to report a setting whose stream does not decode back to the last dump', async () => {
    const input = { idstr: 'pc.ram', paths: files, dumps };
    const settings = [PLAIN, benchSettings(4 * MiB, { quick: true, workers: [1] }).find((x) => x.id === 'lz4a1-w1')!];
    const report = await runBench(input, settings, {
      // a flipped bit mid-stream (page data or a record header): wrong RAM or a decode error
      mutateStream: (stream, s) => {
        if (s.id === 'plain') stream[stream.length >> 1] ^= 1;
      },
    });
    const [plain, lz4] = report.results;
    expect(plain).toMatchObject({ roundTrip: false, wireBytes: null, ratio: null, encodeMBps: null, decodeMBps: null, sha256: null });
    expect(plain!.error).toMatch(/differs from the last dump|decoding failed/);
    expect(lz4!.roundTrip).toBe(true);
  });
});
