import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliDecompressSync } from 'node:zlib';
import { extractFile, inspectFile, renderSummary, transcodeFile } from './commands.js';
import { formatBytes, table } from './io.js';
import { verifyStream } from './verify.js';

const FIXTURES = fileURLToPath(new URL('../../fixtures/qemu/', import.meta.url));

/**
 * The main job end to end on the embedded default, a stream real QEMU 7.2
 * wrote (the `plain` fixture: its guest keeps re-dirtying 2 MiB, so pages are
 * re-sent many times): inspect it, transcode it with XBZRLE + LZ4 and back to
 * plain QEMU records, check RAM against the paused source's, then the table.
 */
export async function runDemo(name = 'plain'): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'migstream-demo-'));
  try {
    const fixture = join(FIXTURES, name);
    if (!existsSync(fixture)) throw new Error(`fixture ${name} is missing from ${FIXTURES}`);
    const input = join(dir, 'qemu.stream');
    writeFileSync(input, brotliDecompressSync(readFileSync(join(fixture, 'stream.bin.br'))));
    const truth = brotliDecompressSync(readFileSync(join(fixture, 'ram.bin.br')));
    const inBytes = statSync(input).size;

    say(`▶ 1. inspect fixtures/qemu/${name}/stream.bin, written by real QEMU 7.2\n`);
    say(renderSummary(await inspectFile(input)));

    const rows: (string | number)[][] = [['step', 'bytes', 'vs QEMU', 'time', 'MB/s in']];
    const step = async (label: string, from: string, to: string, options: Parameters<typeof transcodeFile>[2]) => {
      const t = performance.now();
      await transcodeFile(from, to, options);
      const ms = performance.now() - t;
      const size = statSync(to).size;
      rows.push([label, size, `${((100 * size) / inBytes).toFixed(1)}%`, `${ms.toFixed(0)} ms`, (statSync(from).size / 1e3 / ms).toFixed(0)]);
      return size;
    };
    rows.push(['QEMU 7.2 stream (input)', inBytes, '100.0%', '', '']);

    say('\n▶ 2. transcode with XBZRLE (16 MiB LRU cache) + LZ4 pages (our extension, declared in a manifest)');
    const packed = join(dir, 'xbzrle-lz4.stream');
    await step('XBZRLE + LZ4', input, packed, { xbzrle: { cacheBytes: 16 << 20, policy: 'lru' }, compress: { codec: 'lz4' } });

    say('▶ 3. transcode it back to plain QEMU 7.2 records (what QEMU -incoming loads)');
    const back = join(dir, 'plain.stream');
    await step('back to plain QEMU', packed, back, {});

    say('▶ 4. verify: decode the round-tripped stream, compare every RAMBlock');
    const ex = await extractFile(back, join(dir, 'ram'));
    const exact = Buffer.compare(readFileSync(ex.ramFiles['pc.ram']!), truth) === 0;
    const original = await extractFile(input, join(dir, 'original'));
    void original;
    const same = await verifyStream(back, join(dir, 'original'));
    const allEqual = same.every((e) => e.status === 'equal');
    say(`  pc.ram (${formatBytes(truth.length)}) against the paused source's RAM: ${exact ? 'byte-exact ✔' : 'DIFFERENT ✘'}`);
    say(`  all ${same.length} RAMBlocks against the original stream's: ${allEqual ? 'byte-exact ✔' : 'DIFFERENT ✘'}`);

    say('\n▶ 5. bytes and speeds\n');
    say(table(rows));
    return exact && allEqual ? 0 : 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function say(s: string): void {
  process.stdout.write(`${s}\n`);
}
