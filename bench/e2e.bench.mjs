// End-to-end throughput on the captured dump series (fixtures/dumps: 6 exact pc.ram dumps of a
// 256 MiB Linux guest): the series is encoded once into streams (plain, zlib 1, LZ4 acc 1), then
// transcode (plain → zlib/LZ4, zlib/LZ4 → plain, plain → plain), decode to a RAM image and
// extract (RAM written to a file) are timed, each beside a native baseline measured in the same
// run on the same bytes:
//   plain: memcpy of the stream, `cat STREAM > /dev/null`, `cat STREAM > FILE`;
//   zlib 1: node:zlib deflateSync / inflateSync page by page (zlib 1.3 inside Node, no framing);
//   LZ4 acc 1: the `lz4` 1.9.4 tool benchmarking 4 KiB independent blocks (`lz4 -b1 -B4096`);
//   zstd -1 on 4 KiB blocks (`zstd -b1 -B4096`) as a reference point (migstream has no zstd codec).
// Every output is checked before anything is timed (RAM equal to the last dump, streams equal).
//
//   npm run build && node bench/e2e.bench.mjs
//   E2E_ITERATIONS=5 node bench/e2e.bench.mjs      # best of 5 (default 3)
//
// MB/s are raw page bytes (1 MB = 1e6) per second: the pages the series sends (every page of the
// first dump, then the pages that changed), 4096 bytes each, whether they are zero or not. The
// baselines get the same basis: they compress only the non-zero pages (zero pages cost them
// nothing), so their MB/s is an upper bound for a tool doing our job. "size" is output bytes /
// raw page bytes (streams and compressed pages; empty for rows whose output is RAM). "vs baseline" is our MB/s / the baseline's.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { deflateSync, inflateSync } from 'node:zlib';
import { Bench } from 'tinybench';
import { ensureDumps } from '../fixtures/dumps/lib.mjs';
import { decodeAll, encodeDumps, transcodeBytes } from '../dist/index.node.js';
import { RamImage } from '../dist/sinks.js';
import { isZeroPage } from '../dist/codec/index.js';
import { decodePooled, transcodePooled } from '../dist/stream/pool/drivers.js';
import { extractFile } from '../dist/cli/commands.js';

const PAGE = 4096;
const ITERATIONS = Number(process.env.E2E_ITERATIONS ?? 3);
const tmp = mkdtempSync(join(tmpdir(), 'migstream-e2e-'));
const loadStart = loadavg();
const log = (s) => process.stderr.write(`${s}\n`);

try {
  // ---- inputs
  const { files } = await ensureDumps({ quiet: true });
  const dumps = files.map((f) => new Uint8Array(readFileSync(f)));
  const last = dumps[dumps.length - 1];
  const series = [{ idstr: 'pc.ram', dumps }];
  const same = (a, b) =>
    a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;
  function encode(options) {
    const parts = [];
    const r = encodeDumps(series, (c) => parts.push(c.slice()), options);
    return { stream: new Uint8Array(Buffer.concat(parts)), sent: r.iterations.map((i) => i.pagesSent) };
  }
  log('encoding the series once: plain, zlib 1, LZ4 acc 1');
  const plain = encode({});
  const zlib1 = encode({ compress: { codec: 'zlib', level: 1 } });
  const lz4 = encode({ compress: { codec: 'lz4', acceleration: 1 } });
  const streams = { plain: plain.stream, zlib1: zlib1.stream, lz4: lz4.stream };
  const paths = {};
  for (const [k, s] of Object.entries(streams)) writeFileSync((paths[k] = join(tmp, `${k}.stream`)), s);
  const pagesSent = plain.sent.reduce((a, b) => a + b, 0);
  const raw = pagesSent * PAGE;

  // The pages the series sends that are not zero: what the baselines compress.
  const pages = [];
  {
    const add = (d, off) => {
      const p = d.subarray(off, off + PAGE);
      if (!isZeroPage(p)) pages.push(p);
    };
    for (let off = 0; off < dumps[0].length; off += PAGE) add(dumps[0], off);
    for (let i = 1; i < dumps.length; i++) {
      for (let off = 0; off < last.length; off += PAGE) {
        if (
          Buffer.compare(
            Buffer.from(dumps[i - 1].buffer, dumps[i - 1].byteOffset + off, PAGE),
            Buffer.from(dumps[i].buffer, dumps[i].byteOffset + off, PAGE),
          ) !== 0
        )
          add(dumps[i], off);
      }
    }
  }
  const corpus = new Uint8Array(pages.length * PAGE);
  pages.forEach((p, i) => corpus.set(p, i * PAGE));
  const corpusPath = join(tmp, 'pages.bin');
  writeFileSync(corpusPath, corpus);

  // ---- check every output before timing
  const toRam = (stream) => {
    const ram = new RamImage();
    decodeAll(stream, (ev) => {
      if (ev.type === 'ram-blocks') ram.setBlocks(ev.blocks);
      else if (ev.type === 'page') ram.apply(ev);
    });
    return ram.blocks.get('pc.ram');
  };
  const pooledBytes = async (input, options) => {
    const parts = [];
    await transcodePooled(input, (c) => void parts.push(c.slice()), options);
    return new Uint8Array(Buffer.concat(parts));
  };
  log('checking outputs');
  for (const [k, s] of Object.entries(streams)) if (!same(toRam(s), last)) throw new Error(`${k} stream does not decode to the last dump`);
  if (!same(transcodeBytes(plain.stream), plain.stream)) throw new Error('transcode plain → plain changed the stream');
  if (!same(transcodeBytes(plain.stream, { compress: { codec: 'zlib', level: 1 } }), zlib1.stream)) throw new Error('transcode → zlib 1 differs from encode');
  if (!same(transcodeBytes(plain.stream, { compress: { codec: 'lz4' } }), lz4.stream)) throw new Error('transcode → LZ4 differs from encode');
  if (!same(await pooledBytes(plain.stream, { compress: { codec: 'zlib', level: 1 }, workers: 2 }), zlib1.stream)) throw new Error('pooled zlib differs');
  if (!same(await pooledBytes(lz4.stream, { workers: 2 }), plain.stream)) throw new Error('pooled LZ4 → plain differs');
  if (!same(transcodeBytes(zlib1.stream), plain.stream)) throw new Error('zlib 1 → plain differs from the plain stream');
  for (const k of Object.keys(streams)) {
    const r = await extractFile(paths[k], join(tmp, `x-${k}`));
    if (!same(new Uint8Array(readFileSync(r.ramFiles['pc.ram'])), last)) throw new Error(`extract of ${k} differs from the last dump`);
  }
  const zblocks = pages.map((p) => deflateSync(p, { level: 1 }));
  zblocks.forEach((b, i) => {
    if (!same(inflateSync(b), pages[i])) throw new Error('node:zlib round trip');
  });
  const zbaselineBytes = zblocks.reduce((n, b) => n + b.length, 0);

  // ---- native tools: their own in-memory benchmarks on the same pages (fastest pass, like ours)
  function toolBench(cmd, args) {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    const text = `${r.stdout}${r.stderr}`;
    const m = [...text.matchAll(/(\d+) ->\s+(\d+) \(x?([\d.]+)\),\s*([\d.]+) MB\/s\s*,\s*([\d.]+) MB\/s/g)].at(-1);
    if (r.status !== 0 || !m) return undefined;
    const inBytes = Number(m[1]);
    // the tools report MB/s of their own input (the non-zero pages): time = inBytes / rate
    return { outBytes: Number(m[2]), compressMs: (inBytes / 1e6 / Number(m[4])) * 1000, decompressMs: (inBytes / 1e6 / Number(m[5])) * 1000 };
  }
  const version = (cmd) => spawnSync(cmd, ['--version'], { encoding: 'utf8' }).stdout?.match(/v[\d.]+/)?.[0];
  const lz4Version = version('lz4');
  const zstdVersion = version('zstd');
  log('native tools: lz4 -b1 -B4096, zstd -b1 -B4096');
  const lz4Tool = lz4Version ? toolBench('lz4', ['-b1', `-i${ITERATIONS}`, '-B4096', corpusPath]) : undefined;
  const zstdTool = zstdVersion ? toolBench('zstd', ['-b1', `-i${ITERATIONS}`, '-B4096', corpusPath]) : undefined;

  // ---- timed tasks
  const sh = (cmd) => () => {
    const r = spawnSync('sh', ['-c', cmd]);
    if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
  };
  const count = () => {
    let n = 0;
    return {
      sink: (c) => void (n += c.length),
      get bytes() {
        return n;
      },
    };
  };
  const decodeTo = (stream) => () => toRam(stream);
  const decodePool = (stream) => async () => {
    const ram = new RamImage();
    await decodePooled(
      stream,
      (ev) => {
        if (ev.type === 'ram-blocks') ram.setBlocks(ev.blocks);
        else if (ev.type === 'page') ram.apply(ev);
      },
      { workers: 2 },
    );
  };
  const copy = new Uint8Array(plain.stream.length);
  const tasks = [
    // [group, name, fn, output bytes, baseline?]
    ['plain', 'memcpy of the plain stream', () => copy.set(plain.stream), plain.stream.length, true],
    ['plain', '`cat plain.stream > /dev/null`', sh(`cat ${paths.plain} > /dev/null`), plain.stream.length, true],
    ['plain', '`cat plain.stream > FILE`', sh(`cat ${paths.plain} > ${join(tmp, 'cat.out')}`), plain.stream.length, true],
    ['plain', 'transcode plain → plain', () => transcodeBytes(plain.stream), plain.stream.length],
    ['plain', 'decode plain → RAM image', decodeTo(plain.stream), undefined],
    ['plain', 'extract plain.stream → pc.ram file', () => extractFile(paths.plain, join(tmp, 'x-plain')), undefined],
    [
      'zlib 1',
      'node:zlib deflateSync level 1, page by page',
      () => {
        for (const p of pages) deflateSync(p, { level: 1 });
      },
      zbaselineBytes,
      true,
    ],
    ['zlib 1', 'transcode plain → zlib 1, main thread', () => transcodeBytes(plain.stream, { compress: { codec: 'zlib', level: 1 } }), zlib1.stream.length],
    [
      'zlib 1',
      'transcode plain → zlib 1, 2 workers',
      () => {
        const c = count();
        return transcodePooled(plain.stream, c.sink, { compress: { codec: 'zlib', level: 1 }, workers: 2 });
      },
      zlib1.stream.length,
    ],
    [
      'zlib 1 decompress',
      'node:zlib inflateSync, page by page',
      () => {
        for (const b of zblocks) inflateSync(b);
      },
      undefined,
      true,
    ],
    ['zlib 1 decompress', 'transcode zlib 1 → plain, main thread', () => transcodeBytes(zlib1.stream), plain.stream.length],
    [
      'zlib 1 decompress',
      'transcode zlib 1 → plain, 2 workers',
      () => {
        const c = count();
        return transcodePooled(zlib1.stream, c.sink, { workers: 2 });
      },
      plain.stream.length,
    ],
    ['zlib 1 decompress', 'decode zlib 1 → RAM image, 2 workers', decodePool(zlib1.stream), undefined],
    ['zlib 1 decompress', 'extract zlib1.stream → pc.ram file', () => extractFile(paths.zlib1, join(tmp, 'x-zlib1')), undefined],
    ['LZ4 acc 1', 'transcode plain → LZ4, main thread', () => transcodeBytes(plain.stream, { compress: { codec: 'lz4' } }), lz4.stream.length],
    [
      'LZ4 acc 1',
      'transcode plain → LZ4, 2 workers',
      () => {
        const c = count();
        return transcodePooled(plain.stream, c.sink, { compress: { codec: 'lz4' }, workers: 2 });
      },
      lz4.stream.length,
    ],
    ['LZ4 decompress', 'transcode LZ4 → plain, main thread', () => transcodeBytes(lz4.stream), plain.stream.length],
    [
      'LZ4 decompress',
      'transcode LZ4 → plain, 2 workers',
      () => {
        const c = count();
        return transcodePooled(lz4.stream, c.sink, { workers: 2 });
      },
      plain.stream.length,
    ],
    ['LZ4 decompress', 'decode LZ4 → RAM image, main thread', decodeTo(lz4.stream), undefined],
    ['LZ4 decompress', 'extract lz4.stream → pc.ram file', () => extractFile(paths.lz4, join(tmp, 'x-lz4')), undefined],
  ];
  const rows = [];
  for (const [group, name, fn, outBytes, baseline] of tasks) {
    log(`timing: ${name}`);
    const bench = new Bench({ iterations: ITERATIONS, time: 0, warmup: true, warmupIterations: 1, warmupTime: 0 });
    bench.add(name, fn);
    await bench.run();
    const t = bench.tasks[0];
    if (t.result.error) throw t.result.error;
    // the fastest pass: on a shared machine interference only ever slows a pass down
    rows.push({ group, name, ms: t.result.latency.min, outBytes, baseline: !!baseline });
  }
  const toolRow = (group, name, ms, outBytes) => rows.push({ group, name, ms, outBytes, baseline: true, tool: true });
  if (lz4Tool) {
    toolRow('LZ4 acc 1', `\`lz4 ${lz4Version} -b1 -B4096\`, compress`, lz4Tool.compressMs, lz4Tool.outBytes);
    toolRow('LZ4 decompress', `\`lz4 ${lz4Version} -b1 -B4096\`, decompress`, lz4Tool.decompressMs, undefined);
  }
  if (zstdTool) {
    toolRow('zstd (reference)', `\`zstd ${zstdVersion} -b1 -B4096\`, compress`, zstdTool.compressMs, zstdTool.outBytes);
    toolRow('zstd (reference)', `\`zstd ${zstdVersion} -b1 -B4096\`, decompress`, zstdTool.decompressMs, undefined);
  }

  // ---- report
  const fmt = (x) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
  const mbps = (ms) => raw / 1e6 / (ms / 1000);
  const order = ['plain', 'zlib 1', 'zlib 1 decompress', 'LZ4 acc 1', 'LZ4 decompress', 'zstd (reference)'];
  console.log(
    `dumps: ${dumps.length} × ${dumps[0].length / 2 ** 20} MiB pc.ram (${relative(process.cwd(), files[0].replace(/\/[^/]*$/, '')) || '.'}); pages sent ${pagesSent} (${plain.sent.join(' + ')}), raw page bytes ${raw} (${(raw / 1e6).toFixed(1)} MB), of which ${pages.length} non-zero pages (${(corpus.length / 1e6).toFixed(1)} MB) for the baselines`,
  );
  console.log(
    `streams: plain ${plain.stream.length} B, zlib 1 ${zlib1.stream.length} B, LZ4 acc 1 ${lz4.stream.length} B; best of ${ITERATIONS}; node ${process.version}, zlib ${process.versions.zlib}\n`,
  );
  console.log('| group | task | ms | MB/s | vs baseline | size (out / raw) |');
  console.log('|---|---|---:|---:|---:|---:|');
  for (const g of order) {
    const rs = [...rows.filter((r) => r.group === g && r.baseline), ...rows.filter((r) => r.group === g && !r.baseline)];
    const base = rs.find((r) => r.baseline);
    for (const r of rs) {
      const vs = r.baseline || !base ? '' : `${((mbps(r.ms) / mbps(base.ms)) * 100).toFixed(0)}%`;
      const name = r.baseline ? `${r.name} (baseline)` : r.name;
      console.log(
        `| ${g} | ${name} | ${fmt(r.ms)} | ${fmt(mbps(r.ms))} | ${vs} | ${r.outBytes === undefined ? '' : `${((r.outBytes / raw) * 100).toFixed(1)}%`} |`,
      );
    }
  }
  console.log(
    `\n"vs baseline": against the group's first baseline row. ${cpus().length} CPUs (${cpus()[0]?.model}); load average ${loadStart.map((x) => x.toFixed(2)).join(' ')} at the start, ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')} at the end`,
  );
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
