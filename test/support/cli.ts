import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll } from 'vitest';

/** The built CLI: tests run it as users do, from dist/ (npm ci builds it through `prepare`). */
export const CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');

/** Runs `migstream ARGS` with optional stdin; stdout as text, and as bytes for binary output. */
export function runCli(args: string[], input?: Uint8Array): { code: number | null; stdout: string; stdoutBytes: Uint8Array; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { input, maxBuffer: 256 << 20 });
  return { code: r.status, stdout: r.stdout.toString(), stdoutBytes: new Uint8Array(r.stdout), stderr: r.stderr.toString() };
}

/** Fails the test file up front, with the fix, when dist/ is missing. */
export function requireBuiltCli(): void {
  beforeAll(() => {
    if (!existsSync(CLI)) throw new Error('dist/ is missing: run `npm run build` (npm ci does it through `prepare`)');
  });
}
