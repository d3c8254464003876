// Runs every benchmark suite in turn (each prints its own markdown table). `npm run bench [-- NAME…]`
// runs a subset, e.g. `npm run bench -- decode xbzrle`. Builds first so dist/ matches src/.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const SUITES = {
  decode: 'bench/decode.bench.mjs',
  xbzrle: 'bench/xbzrle.bench.mjs',
  policies: 'bench/xbzrle-policies.mjs',
  compress: 'bench/compress.bench.mjs',
  pool: 'bench/pool.bench.mjs',
  'encode-paths': 'bench/encode-paths.mjs',
  bitmap: 'bench/bitmap.bench.mjs',
  amplification: 'bench/amplification.bench.mjs',
  chunks: 'bench/chunks.bench.mjs',
  e2e: 'bench/e2e.bench.mjs',
  'qemu-compare': 'bench/qemu-compare.mjs',
  scale: 'bench/scale.mjs',
};
const wanted = process.argv.slice(2);
const unknown = wanted.filter((w) => !(w in SUITES));
if (unknown.length) {
  console.error(`unknown suite(s): ${unknown.join(', ')}; known: ${Object.keys(SUITES).join(', ')}`);
  process.exit(2);
}
// scale writes gigabytes; it runs only when asked for by name
const names = wanted.length ? wanted : Object.keys(SUITES).filter((n) => n !== 'scale');
const build = spawnSync('npx', ['tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' });
if (build.status !== 0) process.exit(1);
let failed = 0;
for (const name of names) {
  const file = SUITES[name];
  if (!existsSync(file)) {
    console.log(`\n## ${name}: ${file} is missing, skipped`);
    continue;
  }
  console.log(`\n## ${name} (node ${file})\n`);
  const r = spawnSync(process.execPath, ['--expose-gc', file], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
