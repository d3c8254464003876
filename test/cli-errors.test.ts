import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadFixture } from '../fixtures/qemu/lib.mjs';
import { CLI, requireBuiltCli, runCli } from './support/cli.js';

requireBuiltCli();
const work = mkdtempSync(join(tmpdir(), 'migstream-cli-errors-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** `migstream ARGS | head -c BYTES`: the CLI's exit status and stderr. */
function intoHead(args: string[], bytes: number): { code: number; stderr: string; headBytes: number } {
  const quoted = [process.execPath, CLI, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
  const r = spawnSync('bash', ['-c', `${quoted} 2>"$ERR" | head -c ${bytes} | wc -c; exit \${PIPESTATUS[0]}`], {
    env: { ...process.env, ERR: join(work, 'stderr.txt') },
  });
  const stderr = spawnSync('cat', [join(work, 'stderr.txt')]).stdout.toString();
  return { code: r.status!, stderr, headBytes: Number(r.stdout.toString().trim()) };
}

describe('failures that are not a bad stream', () => {
  const big = join(work, 'big.stream');
  writeFileSync(big, loadFixture('plain').stream); // transcodes to 21 MB

  it.each([
    ['sync', []],
    ['2 workers', ['--workers', '2']],
    ['2 workers, LZ4', ['--workers', '2', '--compress', 'lz4']],
  ])('`transcode BIG - | head -c 1000000` (%s) exits 1 with one line naming the closed output', (_, extra) => {
    const r = intoHead(['transcode', big, '-', ...(extra as string[])], 1_000_000);
    expect(r.headBytes).toBe(1_000_000);
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^migstream: output closed: stdout \(EPIPE/);
    expect(r.stderr).not.toMatch(/bad stream|UNSUPPORTED/);
  });

  it('a bad stream still exits 3', () => {
    const bad = join(work, 'bad.stream');
    writeFileSync(bad, new Uint8Array([0x51, 0x45, 0x56, 0x4d, 0, 0, 0, 9]));
    const r = runCli(['inspect', bad]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/^migstream: bad stream \[BAD_VERSION\] at byte 4/);
  });
});
