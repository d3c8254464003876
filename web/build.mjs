// npm run build:web: bundles the inspector (page + worker, Chart.js and the portable core inlined) into one
// self-contained dist/web/inspector.html. Type-checks web/ first (esbuild does not).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { build } from 'esbuild';

const here = import.meta.dirname;
const root = join(here, '..');

/** The page's HTML, `</script` escaped inside inline code. */
export async function buildInspector({ typecheck = true, minify = true } = {}) {
  if (typecheck) execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(here, 'tsconfig.json')], { stdio: 'inherit' });
  const common = { bundle: true, platform: 'browser', format: 'iife', write: false, logLevel: 'warning', minify, target: 'es2022', legalComments: 'none' };
  const worker = await build({ ...common, entryPoints: [join(here, 'src/worker.ts')] });
  const page = await build({ ...common, entryPoints: [join(here, 'src/main.ts')], define: { WORKER_SOURCE: JSON.stringify(worker.outputFiles[0].text) } });
  const js = page.outputFiles[0].text.replace(/<\/(script)/gi, '<\\/$1');
  const css = readFileSync(join(here, 'src/style.css'), 'utf8');
  const version = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline' blob:; worker-src blob:; style-src 'unsafe-inline'; img-src data: blob:">
<title>migstream inspector</title>
<style>
${css}</style>
</head>
<body>
<header>
  <h1>migstream inspector <small>${version}</small></h1>
  <div class="pick">
    <label class="btn">Open a stream… <input id="file" type="file" aria-label="open a migration stream file"></label>
    <label class="btn alt" id="compare-pick" hidden>Compare with… <input id="compare-file" type="file" aria-label="a second stream to compare with"></label>
    <span id="drop">or drop a file anywhere. It is decoded here, in your browser: nothing is uploaded.</span>
  </div>
</header>
<div class="bar"><progress id="progress" hidden aria-label="decoding progress"></progress><p id="status" role="status" aria-live="polite">No stream open.</p></div>
<nav id="nav" hidden aria-label="sections"><a href="#error" id="nav-error">error</a><a href="#overview">header</a><a href="#timeline">iterations</a><a href="#pages">page map</a><a href="#devices">devices</a><a href="#block">block</a><a href="#extensions">extensions</a></nav>
<main id="content"></main>
<footer>migstream ${version}: QEMU 7.2 migration streams, decoded in the browser.</footer>
<script type="application/json" id="migstream-summary"></script>
<script>
${js}</script>
</body>
</html>
`;
}

if (process.argv[1] === import.meta.filename) {
  const out = join(root, 'dist/web/inspector.html');
  mkdirSync(dirname(out), { recursive: true });
  const html = await buildInspector();
  writeFileSync(out, html);
  console.log(`wrote ${out} (${html.length} bytes)`);
}
