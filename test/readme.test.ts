import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { requireBuiltCli } from './support/cli.js';

requireBuiltCli(); // the examples import the package entries, which resolve to dist/
const root = join(import.meta.dirname, '..');
// Inside the package, so `import … from 'migstream'` resolves to this package (self-reference through `exports`).
const work = mkdtempSync(join(root, '.readme-run-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const readme = readFileSync(join(root, 'README.md'), 'utf8');
const library = readme.slice(readme.indexOf('## Library'));
const examples = [...library.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]!);

describe("README's library examples, run as written", () => {
  it('there are examples, and they import only package entries', () => {
    expect(examples.length).toBeGreaterThanOrEqual(4);
    for (const code of examples) {
      for (const [, from] of code.matchAll(/from '([^']+)'/g)) expect(from).toMatch(/^(migstream(\/(node|sinks|codec|xbzrle))?|node:[a-z/]+)$/);
    }
  });

  it.each(examples.map((code, i) => [i, code] as const))('example %i prints what its comments say', (i, code) => {
    const file = join(work, `example-${i}.mjs`);
    writeFileSync(file, code);
    const r = spawnSync(process.execPath, [file], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    // every console.log(…); // EXPECTED line, in order
    const expected = [...code.matchAll(/console\.log\(.*\);\s*\/\/ (.*)$/gm)].map((m) => m[1]!.trim());
    expect(expected.length).toBeGreaterThan(0);
    expect(r.stdout.trim().split('\n')).toEqual(expected);
  });
});
