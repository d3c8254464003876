// npm run build (after tsc): dist/cli/main.js becomes one bundled file. Loading the CLI's ~120 modules one
// by one cost 0.1–0.3 s of every run on top of node's own start (resolution, file opens, one compile per
// module); the bundle starts about as fast as `node -e 0`. npm packages stay imports (lz4-wasm-nodejs finds
// its .wasm next to itself); the other dist/ modules are untouched and remain the library.
import { join } from 'node:path';
import { build } from 'esbuild';

const entry = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');
await build({
  entryPoints: [entry],
  outfile: entry,
  allowOverwrite: true,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  sourcemap: 'linked', // chained through tsc's maps: stack traces name src/*.ts
  logLevel: 'warning',
  logOverride: { 'ignored-bare-import': 'error' }, // a side-effect import dropped would silently lose a registration
});
