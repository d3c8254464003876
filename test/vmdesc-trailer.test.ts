/**
 * The vmdesc trailer policy (issue 18, docs/fuzzing.md): QEMU 7.2 reads the
 * vmdesc after EOF only to skip it, so a stream with a damaged trailer loads.
 * migstream decodes such a stream with a `warning` event (inspect and stderr
 * show it) and passes the trailer on verbatim; `strict` keeps the error.
 * Each case is a differential regression in test/regressions/differential/,
 * replayed here without QEMU and, where QEMU is present, with it.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runIncoming } from '../fixtures/qemu/lib.mjs';
import { MigstreamError } from '../src/codec/errors.js';
import { decodeAll } from '../src/stream/decoder.js';
import type { StreamEvent, StreamWarning, TailInfo } from '../src/stream/events.js';
import { RamImage } from '../src/stream/ram-image.js';
import { transcodeBytes } from '../src/stream/transcode.js';
import { applyDelta, type StreamDelta } from '../src/fuzz/qemu-delta.js';
import { sameBytes } from './support/build.js';
import { requireBuiltCli, runCli } from './support/cli.js';
import { fixtureFile } from './support/fixtures.js';
import { qemuGate } from './support/qemu.js';

const DIR = join(import.meta.dirname, 'regressions', 'differential');

interface Regression {
  note: string;
  verdict: 'both-load';
  /** The warning migstream gives, and where. */
  warning: string;
  warningOffset: number;
  /** The error with `strict` (today's behaviour before the policy). */
  strictCode: string;
  delta: StreamDelta;
}

const cases = readdirSync(DIR)
  .filter((f) => f.startsWith('vmdesc-') && f.endsWith('.json'))
  .sort()
  .map((f) => [f.replace(/\.json$/, ''), JSON.parse(readFileSync(join(DIR, f), 'utf8')) as Regression] as const);

const work = mkdtempSync(join(tmpdir(), 'migstream-vmdesc-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

interface Decoded {
  ram: RamImage;
  warnings: StreamWarning[];
  tail: TailInfo | undefined;
  /** Stream offset of the device state (the first `device-state` byte). */
  tailStart: number;
}

function decode(bytes: Uint8Array, strict = false): Decoded {
  const ram = new RamImage();
  const warnings: StreamWarning[] = [];
  let tail: TailInfo | undefined;
  let seen = 0;
  decodeAll(
    bytes,
    (ev: StreamEvent) => {
      if (ev.type === 'ram-blocks') ram.setBlocks(ev.blocks);
      else if (ev.type === 'page') ram.apply(ev);
      else if (ev.type === 'warning') warnings.push(ev.warning);
      else if (ev.type === 'end') tail = ev.tail;
      else if (ev.type === 'device-state') seen += ev.bytes.length;
    },
    { strict },
  );
  return { ram, warnings, tail, tailStart: bytes.length - seen };
}

const intact = fixtureFile('plain', 'stream.bin');
const truthRam = fixtureFile('plain', 'ram.bin');
const reference = decode(intact);

describe('a damaged vmdesc trailer (QEMU 7.2 loads these streams)', () => {
  it('has the regressions, and the intact stream decodes without a warning', () => {
    expect(cases.map(([n]) => n)).toEqual([
      'vmdesc-invalid-json',
      'vmdesc-trailing-bytes',
      'vmdesc-truncated',
      'vmdesc-wrong-device-name',
      'vmdesc-wrong-type-byte',
    ]);
    expect(reference.warnings).toEqual([]);
    expect(reference.tail!.vmdesc).toBeDefined();
    expect(reference.tail!.devices.length).toBeGreaterThan(10);
    expect(() => decode(intact, true)).not.toThrow();
  });

  it.each(cases)('%s: decodes with one warning, RAM and device sections as the intact stream', (_name, c) => {
    const bytes = applyDelta(intact, c.delta);
    const d = decode(bytes);
    expect(d.warnings).toHaveLength(1);
    const w = d.warnings[0]!;
    expect(w.code).toBe(c.warning);
    expect(w.offset).toBe(c.warningOffset);
    expect(w.message).toMatch(/^damaged vmdesc trailer \(QEMU 7\.2 skips it\): /);
    expect(sameBytes(d.ram.blocks.get('pc.ram')!, truthRam)).toBe(true);
    expect(d.tail!.vmdesc).toBeUndefined();
    expect(d.tail!.parsed).toBe(true);
    expect(d.tail!.devices.map(({ idstr, instanceId, offset, size }) => ({ idstr, instanceId, offset, size }))).toEqual(
      reference.tail!.devices.map(({ idstr, instanceId, offset, size }) => ({ idstr, instanceId, offset, size })),
    );
  });

  it.each(cases)('%s: strict decoding fails with the same code', (_name, c) => {
    const bytes = applyDelta(intact, c.delta);
    let err: unknown;
    try {
      decode(bytes, true);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MigstreamError);
    expect((err as MigstreamError).code).toBe(c.strictCode);
  });

  it.each(cases)('%s: transcode passes the trailer on byte for byte', (_name, c) => {
    const bytes = applyDelta(intact, c.delta);
    const damagedTail = bytes.subarray(decode(bytes).tailStart);
    const intactOut = transcodeBytes(intact);
    const intactTail = intact.length - reference.tailStart;
    const expected = Buffer.concat([intactOut.subarray(0, intactOut.length - intactTail), damagedTail]);
    expect(sameBytes(transcodeBytes(bytes), expected)).toBe(true);
    expect(() => transcodeBytes(bytes, { strict: true })).toThrow(MigstreamError);
  });
});

describe('the CLI on a damaged trailer', () => {
  requireBuiltCli();
  const [, truncated] = cases.find(([n]) => n === 'vmdesc-truncated')!;
  const path = join(work, 'truncated.bin');
  writeFileSync(path, applyDelta(intact, truncated.delta));

  it('inspect warns on stderr and in its report, exit 0; --strict exits 3', () => {
    const r = runCli(['inspect', path]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^migstream: warning \[TRUNCATED\] at byte 21472628: damaged vmdesc trailer/m);
    expect(r.stdout).toMatch(/^warning \[TRUNCATED\] at byte 21472628: /m);
    const j = runCli(['inspect', path, '--json']);
    expect(JSON.parse(j.stdout).warnings).toEqual([{ code: 'TRUNCATED', offset: 21472628, message: expect.stringMatching(/vmdesc JSON/) }]);
    const s = runCli(['inspect', path, '--strict']);
    expect(s.code).toBe(3);
    expect(s.stderr).toMatch(/^migstream: bad stream \[TRUNCATED\] at byte 21472628/);
  });

  it('extract writes pc.ram equal to the source with a warning; transcode passes the trailer on', () => {
    const out = join(work, 'extract');
    const r = runCli(['extract', path, '--out', out]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/warning \[TRUNCATED\]/);
    expect(sameBytes(readFileSync(join(out, 'pc.ram.bin')), truthRam)).toBe(true);
    const t = runCli(['transcode', path, '-']);
    expect(t.code).toBe(0);
    expect(t.stderr).toMatch(/warning \[TRUNCATED\]/);
    const bytes = applyDelta(intact, truncated.delta);
    expect(sameBytes(t.stdoutBytes, transcodeBytes(bytes))).toBe(true);
    expect(runCli(['transcode', path, join(work, 'x.bin'), '--strict']).code).toBe(3);
  });
});

const gate = qemuGate();
describe.skipIf(!gate.run)('real QEMU 7.2 loads the same bytes', () => {
  it.each(cases)('%s: QEMU loads it with RAM equal to the source', async (name, c) => {
    const streamPath = join(work, `${name}.bin`);
    writeFileSync(streamPath, applyDelta(intact, c.delta));
    const r = await runIncoming({ config: c.delta.fixture, streamPath, workDir: join(work, name), timeoutMs: 60_000 });
    expect(r.queryMigrate.status).toBe('completed');
    expect(sameBytes(readFileSync(r.ramPath), truthRam)).toBe(true);
  });
});
