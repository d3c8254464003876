import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireBuiltCli, runCli } from './support/cli.js';

const PS = 4096;
const PAGES = 256;

requireBuiltCli();

let dir: string;
let dumps: string[];

/** Three 1 MiB dumps: pages 10..49 change between 0 and 1, pages 10..19 between 1 and 2. */
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'migstream-plan-cli-'));
  const d0 = new Uint8Array(PAGES * PS);
  for (let i = 0; i < d0.length; i++) d0[i] = (i * 7 + (i >> 12)) & 0xff;
  const d1 = d0.slice();
  for (let p = 10; p < 50; p++) d1[p * PS + 17] ^= 0xff;
  const d2 = d1.slice();
  for (let p = 10; p < 20; p++) d2.fill(p, p * PS, (p + 1) * PS);
  dumps = [d0, d1, d2].map((d, i) => {
    const path = join(dir, `d${i}.ram`);
    writeFileSync(path, d);
    return path;
  });
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('migstream dirty-rate', () => {
  it('prints exact pages per interval, the working set and the hot set (--json)', () => {
    const r = runCli(['dirty-rate', ...dumps, '--interval', '2', '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.intervals.map((i: { pages: number }) => i.pages)).toEqual([40, 10]);
    expect(j.intervals[0].mibPerSecond).toBeCloseTo((40 * PS) / (1 << 20) / 2, 12);
    expect(j.workingSet).toEqual({ pagesDirtiedIn: [30, 10], total: 40, hot: 10 });
    expect(j.sampling.skipped).toMatch(/128 MiB/);
  });

  it('prints a table', () => {
    const r = runCli(['dirty-rate', ...dumps, '--interval', '1']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/0→1\s+40\s+0\.16/);
    expect(r.stdout).toMatch(/hot \(every interval\): 10/);
  });

  it('usage errors exit 2', () => {
    expect(runCli(['dirty-rate', ...dumps]).code).toBe(2);
    expect(runCli(['dirty-rate', dumps[0]!, '--interval', '1']).code).toBe(2);
    expect(runCli(['dirty-rate', ...dumps, '--interval', 'soon']).code).toBe(2);
  });

  it('dumps of different sizes are a usage error naming both', () => {
    const short = join(dir, 'short.ram');
    writeFileSync(short, new Uint8Array(PS));
    const r = runCli(['dirty-rate', dumps[0]!, short, '--interval', '1']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/short\.ram: 4096 bytes, but .*d0\.ram has 1048576/);
  });
});

describe('migstream plan', () => {
  it('simulates each setting and recommends one (--json)', () => {
    const r = runCli(['plan', ...dumps, '--interval', '1', '--bandwidth', '512K', '--downtime-limit', '300', '--settings', 'plain,xbzrle:1M:lru', '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.results.map((x: { setting: { id: string } }) => x.setting.id)).toEqual(['plain', 'xbzrle-1M-lru']);
    for (const x of j.results) {
      expect(x.converged).toBe(true);
      // every page goes out at least once: the bulk pass and the stop-and-copy cover all 256
      expect(x.rounds[0].pages + (x.rounds.length === 1 ? x.final.pages : 0)).toBeGreaterThanOrEqual(x.rounds.length === 1 ? PAGES : 0);
    }
    expect(j.recommended.id).toMatch(/plain|xbzrle/);
    expect(j.link).toMatchObject({ bandwidth: 512 * 1024, downtimeLimitMs: 300, throttle: 'none' });
  });

  it('writes an HTML report with the charts and prints the table', () => {
    const html = join(dir, 'plan.html');
    const r = runCli(['plan', ...dumps, '--interval', '1', '--bandwidth', '1M', '--downtime-limit', '100', '--settings', 'plain', '--html', html]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/zero detection only\s+yes/);
    expect(r.stdout).toMatch(/recommended: zero detection only/);
    const page = readFileSync(html, 'utf8');
    expect(page).toContain('<h1>migstream plan</h1>');
    expect(page).toContain('chart-rounds');
    expect(page).toMatch(/Chart\.js v\d/);
  });

  it('usage errors exit 2', () => {
    const base = ['plan', ...dumps, '--interval', '1'];
    expect(runCli([...base, '--downtime-limit', '300']).code).toBe(2); // no bandwidth
    expect(runCli([...base, '--bandwidth', '1M']).code).toBe(2); // no downtime limit
    expect(runCli([...base, '--bandwidth', '1M', '--downtime-limit', '300', '--settings', 'gzip']).stderr).toMatch(/--settings: .*gzip/);
    expect(runCli([...base, '--bandwidth', '1M', '--downtime-limit', '300', '--throttle', 'max']).code).toBe(2);
    expect(runCli([...base, '--bandwidth', '1M', '--downtime-limit', '300', '--throttle-response', '-1']).code).toBe(2);
    expect(runCli([...base, '--bandwidth', '1M', '--downtime-limit', '300', '--cores', '0']).stderr).toMatch(/--cores expects an integer 1\.\.4096, got "0"/);
  });

  it('--cores: the host cores the compression workers get (the report says so)', () => {
    const args = ['plan', ...dumps, '--interval', '1', '--bandwidth', '1M', '--downtime-limit', '300', '--settings', 'zlib:1/w2'];
    const one = runCli([...args, '--cores', '1', '--json']);
    expect(one.code).toBe(0);
    expect(JSON.parse(one.stdout).link.cores).toBe(1);
    expect(JSON.parse(runCli([...args, '--json']).stdout).link.cores).toBe(null);
    expect(runCli([...args, '--cores', '1']).stdout).toMatch(/, 1 host core\b/);
    const shared = runCli([...args, '--cores', '2', '--vcpus', '1', '--json']);
    expect(JSON.parse(shared.stdout).link).toMatchObject({ cores: 2, vcpus: 1 });
    expect(runCli([...args, '--cores', '2', '--vcpus', '1']).stdout).toMatch(/2 host cores shared with 1 busy vCPU\b/);
  });
});
