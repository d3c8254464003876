import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliDecompressSync } from 'node:zlib';
import { extractFile, inspectFile, renderSummary, transcodeFile } from './commands.js';
import { formatBytes } from './io.js';

const FIXTURES = fileURLToPath(new URL('../../fixtures/qemu/', import.meta.url));

/** The embedded default: a real QEMU 7.2 stream with XBZRLE pages, its ground-truth RAM beside it. */
export async function runDemo(name = 'xbzrle-hit'): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'migstream-demo-'));
  try {
    const fixture = join(FIXTURES, existsSync(join(FIXTURES, name)) ? name : 'plain');
    const input = join(dir, 'qemu.stream');
    writeFileSync(input, brotliDecompressSync(readFileSync(join(fixture, 'stream.bin.br'))));
    const truth = brotliDecompressSync(readFileSync(join(fixture, 'ram.bin.br')));
    say(`▶ inspect ${fixture.replace(/.*fixtures/, 'fixtures')}/stream.bin (written by real QEMU 7.2)\n`);
    say(renderSummary(await inspectFile(input)));

    const output = join(dir, 'plain.stream');
    let t = performance.now();
    const tr = await transcodeFile(input, output);
    const ms = performance.now() - t;
    say(`\n▶ transcode → plain QEMU records: ${formatBytes(tr.inBytes)} → ${formatBytes(tr.outBytes)} in ${ms.toFixed(0)} ms (${(tr.inBytes / 1e3 / ms).toFixed(0)} MB/s)`);

    t = performance.now();
    const ex = await extractFile(output, join(dir, 'ram'));
    say(`▶ extract the transcoded stream: ${Object.keys(ex.ramFiles).length} RAMBlocks in ${(performance.now() - t).toFixed(0)} ms`);
    const mine = readFileSync(ex.ramFiles['pc.ram']!);
    const exact = Buffer.compare(mine, truth) === 0;
    say(`▶ pc.ram (${formatBytes(truth.length)}) against the paused source's RAM: ${exact ? 'byte-exact ✔' : 'DIFFERENT ✘'}`);
    return exact ? 0 : 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function say(s: string): void {
  process.stdout.write(`${s}\n`);
}
