// XBZRLE encode/decode throughput, JS (dist/) against our scalar C baseline
// (bench/native/xbzrle.c, built here with the system gcc -O2), on the same page
// pairs. Outputs are checked byte for byte before anything is timed. Two reference rows show what
// JS cannot avoid: copying both pages into the wasm kernel's memory (encode), and a loop that only
// reads the encoded bytes (decode; a floor only where runs are short: long runs are copied natively).
//
//   node bench/xbzrle.bench.mjs            (after `npm run build`)
//   XBZRLE_BENCH_MS=300 XBZRLE_BENCH_ROUNDS=3 node bench/xbzrle.bench.mjs
//
// Rate = new-page bytes per second (MB = 1e6 B), from the fastest timed pass
// over a case's 64 pairs (hundreds of passes each). Each round measures C then
// JS and the best round counts: on a shared machine, interference only ever
// slows a pass down, so the fastest passes are what the two sides compare.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Bench } from 'tinybench';
import { makeCases, PAGE_SIZE, serializeCases } from './xbzrle-cases.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const timeMs = Number(process.env.XBZRLE_BENCH_MS ?? 100);
const rounds = Number(process.env.XBZRLE_BENCH_ROUNDS ?? 3);

if (!existsSync(join(root, 'dist/xbzrle/index.js'))) {
  console.log('dist/ is missing: compiling with tsc -p tsconfig.json');
  spawnSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: root, stdio: 'inherit' });
}
const { xbzrleEncode, xbzrleEncodeJs, xbzrleDecode } = await import('../dist/xbzrle/index.js');

// Pages live in one big buffer, 8-byte aligned like a RAM image.
const cases = makeCases(64).map(({ name, pairs }) => {
  const arena = new Uint8Array(pairs.length * 2 * PAGE_SIZE);
  return {
    name,
    pairs: pairs.map((p, k) => {
      const at = 2 * k * PAGE_SIZE;
      arena.set(p.old, at);
      arena.set(p.new, at + PAGE_SIZE);
      return { old: arena.subarray(at, at + PAGE_SIZE), new: arena.subarray(at + PAGE_SIZE, at + 2 * PAGE_SIZE) };
    }),
  };
});

// Encode every pair once; check both JS encoders agree and the decoder inverts them.
for (const c of cases) {
  c.encodings = c.pairs.map((p) => {
    const a = new Uint8Array(PAGE_SIZE);
    const b = new Uint8Array(PAGE_SIZE);
    const n = xbzrleEncode(p.old, p.new, a);
    const m = xbzrleEncodeJs(p.old, p.new, b);
    if (n !== m || (n > 0 && !equal(a.subarray(0, n), b.subarray(0, m)))) throw new Error(`${c.name}: wasm and JS encoders differ`);
    if (n > 0) {
      const page = p.old.slice();
      xbzrleDecode(a.subarray(0, n), page);
      if (!equal(page, p.new)) throw new Error(`${c.name}: decode(encode(old, new), old) !== new`);
    }
    return n < 0 ? n : a.slice(0, n);
  });
}

const native = buildNative();
const best = {}; // `${case}|${op}|${impl}` -> best MB/s over rounds
const keep = (key, mbps) => {
  if (mbps > (best[key] ?? -1)) best[key] = mbps;
};

for (let r = 0; r < rounds; r++) {
  if (native) {
    for (const c of runNative(native)) {
      keep(`${c.name}|encode|c`, c.encode.bestMBps);
      keep(`${c.name}|decode|c`, c.decode.bestMBps);
    }
  }
  const bench = new Bench({ time: timeMs, warmupTime: 50, iterations: 20 });
  const scratch = new Uint8Array(PAGE_SIZE);
  const arena = new Uint8Array(new WebAssembly.Memory({ initial: 1 }).buffer);
  for (const c of cases) {
    bench.add(`${c.name}|encode|js`, () => {
      for (const p of c.pairs) xbzrleEncode(p.old, p.new, scratch);
    });
    bench.add(`${c.name}|encode|purejs`, () => {
      for (const p of c.pairs) xbzrleEncodeJs(p.old, p.new, scratch);
    });
    // What any JS-side encode of these pages must pay before scanning: both pages copied into the
    // wasm kernel's memory (the kernel cannot read JS buffers).
    bench.add(`${c.name}|encode|copies`, () => {
      for (const p of c.pairs) {
        arena.set(p.old, 0);
        arena.set(p.new, PAGE_SIZE);
      }
    });
    const decodable = decodeInputs(c);
    if (decodable.length > 0) {
      // The least any JS decoder does: read every encoded byte once (no parsing, no copying).
      bench.add(`${c.name}|decode|floor`, () => {
        let sum = 0;
        for (const x of decodable) {
          const e = x.enc;
          for (let i = 0; i < e.length; i++) sum += e[i];
        }
        if (sum < 0) throw new Error('unreachable');
      });
      // Decoding into the old page is idempotent: every pass does the same work.
      bench.add(`${c.name}|decode|js`, () => {
        for (const x of decodable) xbzrleDecode(x.enc, x.page);
      });
      c.decodable = decodable.length;
    }
  }
  await bench.run();
  for (const task of bench.tasks) {
    const [name, op] = task.name.split('|');
    const c = cases.find((x) => x.name === name);
    const pages = op === 'decode' ? c.decodable : c.pairs.length;
    keep(task.name, (pages * PAGE_SIZE) / (task.result.latency.min / 1000) / 1e6);
  }
}

const fmt = (v) => (v === undefined || v < 0 ? '—' : v.toFixed(0));
const ratio = (js, c) => (js === undefined || c === undefined || c <= 0 ? '—' : `${(js / c).toFixed(2)}×`);
const rows = [];
for (const c of cases) {
  const e = (impl) => best[`${c.name}|encode|${impl}`];
  const d = (impl) => best[`${c.name}|decode|${impl}`];
  rows.push({
    case: c.name,
    'encode JS MB/s': fmt(e('js')),
    'encode C MB/s': fmt(e('c')),
    'encode JS/C': ratio(e('js'), e('c')),
    'pure-JS encode MB/s': fmt(e('purejs')),
    'pure-JS/C': ratio(e('purejs'), e('c')),
    'decode JS MB/s': fmt(d('js')),
    'decode C MB/s': fmt(d('c')),
    'decode JS/C': ratio(d('js'), d('c')),
    'encode: both pages copied into wasm only, MB/s': fmt(e('copies')),
    'decode: a JS loop reading the encoding only, MB/s': fmt(d('floor')),
  });
}
if (process.env.XBZRLE_BENCH_JSON) {
  // for bench/line-rate.mjs: the best MB/s per `case|op|impl`, one JSON line
  console.log(JSON.stringify(best));
  process.exit(0);
}
console.log(`XBZRLE, ${PAGE_SIZE}-byte pages, 64 pairs per case, node ${process.version}${native ? '' : ' (no C baseline)'}`);
console.table(rows);

/**
 * Decode inputs laid out as in a stream decoder: the encodings back to back in
 * one buffer (a stream chunk), the target pages in another (a RAM image).
 */
function decodeInputs(c) {
  const items = c.pairs.map((p, k) => ({ old: p.old, enc: c.encodings[k] })).filter((x) => x.enc.length > 0);
  const chunk = new Uint8Array(items.reduce((n, x) => n + x.enc.length, 0));
  const ram = new Uint8Array(items.length * PAGE_SIZE);
  let at = 0;
  return items.map((x, k) => {
    chunk.set(x.enc, at);
    ram.set(x.old, k * PAGE_SIZE);
    const enc = chunk.subarray(at, (at += x.enc.length));
    return { enc, page: ram.subarray(k * PAGE_SIZE, (k + 1) * PAGE_SIZE) };
  });
}

function equal(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Compiles the C baseline, writes the pairs for it, and checks its encodings against ours. */
function buildNative() {
  const dir = mkdtempSync(join(tmpdir(), 'xbzrle-bench-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const exe = join(dir, 'xbzrle');
  try {
    execFileSync('gcc', ['-O2', '-o', exe, join(here, 'native/xbzrle.c')], { stdio: 'pipe' });
  } catch (e) {
    console.log(`No C baseline: could not build bench/native/xbzrle.c with gcc (${e.code ?? e.message}).`);
    return null;
  }
  const pairsFile = join(dir, 'pairs.bin');
  const encFile = join(dir, 'encodings.bin');
  writeFileSync(pairsFile, serializeCases(cases));
  const native = { exe, pairsFile, encFile };
  runNative(native, 0.001);
  // The C encodings must match ours byte for byte.
  const enc = readFileSync(encFile);
  let at = 0;
  for (const c of cases) {
    c.encodings.forEach((ours, k) => {
      const len = enc.readInt32LE(at);
      at += 4;
      const theirs = len > 0 ? enc.subarray(at, at + len) : len;
      if (len > 0) at += len;
      const same = typeof ours === 'number' ? ours === len : len === ours.length && equal(theirs, ours);
      if (!same) throw new Error(`${c.name} pair ${k}: C and JS encodings differ`);
    });
  }
  return native;
}

function runNative({ exe, pairsFile, encFile }, seconds = timeMs / 1000) {
  const out = execFileSync(exe, [pairsFile, encFile, String(seconds)], { encoding: 'utf8' });
  return JSON.parse(out).cases;
}
