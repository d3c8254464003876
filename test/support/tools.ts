import { spawnSync } from 'node:child_process';

/** Under CI (CI=true or MIGSTREAM_REQUIRE_TOOLS=1) a missing tool fails the test run instead of skipping. */
export function toolsRequired(): boolean {
  const ci = process.env.CI;
  return (ci !== undefined && ci !== '' && ci !== '0' && ci !== 'false') || process.env.MIGSTREAM_REQUIRE_TOOLS === '1';
}

/**
 * Whether an external tool a test needs is here. Without it the test skips with the reason
 * printed, except under CI, where `.ci/run` installs every tool and its absence throws.
 */
export function toolGate(argv: readonly string[], what: string): boolean {
  const r = spawnSync(argv[0]!, argv.slice(1), { stdio: 'ignore' });
  if (r.status === 0) return true;
  const reason = `${argv.join(' ')} did not run (${r.error?.message ?? `exit ${r.status}`})`;
  if (toolsRequired()) throw new Error(`${what} needs ${argv[0]}, which CI must install: ${reason}`);
  console.warn(`skipping ${what}: ${reason} (CI installs it and fails instead)`);
  return false;
}
