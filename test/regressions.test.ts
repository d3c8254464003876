/**
 * Replays every case the fuzzer saved under test/regressions/ (see
 * docs/fuzzing.md): the harness's oracles must find nothing now, a stream
 * case may only end in a MigstreamError (with the recorded code, when there
 * is one), and transcoding it may only fail with one too.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MigstreamError } from '../src/codec/errors.js';
import { decodeAll } from '../src/stream/decoder.js';
import { transcodeBytes } from '../src/stream/transcode.js';
import { timedRun } from '../src/fuzz/engine.js';
import { loadExtraCodecs, runCase, setScratchDir, type FuzzCase } from '../src/fuzz/targets.js';

const SLOW_MS = 250;

const DIR = join(import.meta.dirname, 'regressions');

interface Saved {
  case: Omit<FuzzCase, 'bytes'>;
  finding: { kind: string; target: string; message: string };
  /** What the decoder gives for this input now: "ok" or a MigstreamError code. */
  expectedCode?: string;
  /** What transcoding it gives now, when the finding was in transcode. */
  expectedTranscodeCode?: string;
}

const files = existsSync(DIR)
  ? readdirSync(DIR)
      .filter((f) => f.endsWith('.bin'))
      .sort()
  : [];
const extras = await loadExtraCodecs();
// Cases saved with `extract: true` run the extract file sinks here.
const scratch = mkdtempSync(join(tmpdir(), 'migstream-regressions-'));
setScratchDir(scratch);
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function outcome(run: () => unknown): string {
  try {
    run();
    return 'ok';
  } catch (e) {
    expect(e, String((e as Error)?.stack ?? e)).toBeInstanceOf(MigstreamError);
    expect((e as MigstreamError).detail).not.toMatch(/^internal error/);
    return (e as MigstreamError).code;
  }
}

describe('fuzz regressions', () => {
  it('has the saved cases', () => {
    expect(files.length).toBeGreaterThan(0);
  });

  it.each(files)('%s stays fixed', (file) => {
    const meta = JSON.parse(readFileSync(join(DIR, file.replace(/\.bin$/, '.json')), 'utf8')) as Saved;
    const bytes = new Uint8Array(readFileSync(join(DIR, file)));
    const c = { ...meta.case, bytes } as FuzzCase;
    const res = runCase(c, extras);
    expect(res.findings.map((f) => `${f.kind} ${f.target}: ${f.message}`)).toEqual([]);
    if (meta.finding.kind === 'slow') {
      // The fuzzer's own oracle, as the CI smoke applies it: 250 ms plus 250 ms per MiB, best of three.
      const limit = SLOW_MS * (1 + bytes.length / 2 ** 20);
      const best = Math.min(...[0, 1, 2].map(() => timedRun(c, extras).ms));
      expect(best, `${file} took ${best.toFixed(0)} ms`).toBeLessThan(limit);
    }
    if (c.kind !== 'stream') return;
    const code = outcome(() => decodeAll(bytes, () => {}));
    if (meta.expectedCode) expect(code).toBe(meta.expectedCode);
    const transcoded = outcome(() => transcodeBytes(bytes, { maxRamBytes: 16 << 20, ...(c.opts.xbzrle ? { xbzrle: { cacheBytes: 64 << 10 } } : {}) }));
    if (meta.expectedTranscodeCode) expect(transcoded).toBe(meta.expectedTranscodeCode);
  });
});
