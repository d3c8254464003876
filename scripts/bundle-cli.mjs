// npm run build (after tsc): dist/cli/main.js becomes one bundled file. Loading the CLI's ~120 modules one
// by one cost 0.1–0.3 s of every run on top of node's own start (resolution, file opens, one compile per
// module); the bundle starts about as fast as `node -e 0`. npm packages stay imports (lz4-wasm-nodejs finds
// its .wasm next to itself); the other dist/ modules are untouched and remain the library.
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { build } from 'esbuild';

// Packages loaded on first use rather than at every start (~40 ms of user time in every start went to resolving and
// lexing them from ESM, for commands that never touch them): each import of one becomes a shim that require()s it
// on first call. Only packages the CLI's modules do not touch while loading (lz4-wasm-nodejs and hash-wasm are).
const LAZY = ['fflate', 'fzstd', '@msgpack/msgpack'];
const lazyPackages = {
  name: 'lazy-packages',
  setup(b) {
    const filter = new RegExp(`^(${LAZY.map((p) => p.replace(/[/.]/g, '\\$&')).join('|')})$`);
    b.onResolve({ filter }, (args) => ({ path: args.path, namespace: 'lazy' }));
    b.onLoad({ filter: /.*/, namespace: 'lazy' }, (args) => {
      // Functions and classes only: an import of anything else finds no export here and fails the build, loudly.
      const mod = createRequire(import.meta.url)(args.path);
      const names = Object.keys(mod).filter((n) => typeof mod[n] === 'function' && /^[A-Za-z_$][\w$]*$/.test(n));
      const forward = names.map(
        (n) => `export function ${n}(...a) { const f = load().${n}; return new.target ? Reflect.construct(f, a) : f.apply(this, a); }`,
      );
      return {
        contents: [
          `import { createRequire } from 'node:module';`,
          `let m;`,
          `const load = () => (m ??= createRequire(import.meta.url)(${JSON.stringify(args.path)}));`,
          ...forward,
        ].join('\n'),
        loader: 'js',
      };
    });
  },
};

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
  plugins: [lazyPackages],
  logOverride: { 'ignored-bare-import': 'error' }, // a side-effect import dropped would silently lose a registration
});
