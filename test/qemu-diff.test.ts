/**
 * The differential fuzzer's pure parts, without QEMU: case deltas, the
 * cases themselves, the migstream side of a case, and the verdicts (the
 * comparison must be able to fail). The QEMU side runs in
 * test/qemu-diff-smoke.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { applyDelta, deltaOf } from '../src/fuzz/qemu-delta.js';
import { diffCase, type FixtureBase } from '../src/fuzz/qemu-cases.js';
import { classifyQemu, judge, migstreamLoad, type MigstreamResult } from '../src/fuzz/qemu-diff.js';
import { documented } from '../src/fuzz/qemu-diff-run.js';
import type { LoadResult } from '../src/fuzz/qemu-dest.js';
import { walkStream } from '../src/fuzz/walk.js';
import { DiskImage } from '../src/stream/disk-image.js';
import { sameBytes } from './support/build.js';
import { fixtureFile } from './support/fixtures.js';

const plain = fixtureFile('plain', 'stream.bin');
const truth = fixtureFile('plain', 'ram.bin');

describe('case deltas', () => {
  it('rebuild any edit of a stream from the fixture, and stay small', () => {
    const base = Uint8Array.from({ length: 5000 }, (_, i) => (i * 7) & 0xff);
    const edits: Uint8Array[] = [
      base.subarray(0, 1234), // truncation
      Uint8Array.from([...base.subarray(0, 10), 1, 2, 3, ...base.subarray(10)]), // insertion
      Uint8Array.from([...base.subarray(0, 10), ...base.subarray(30)]), // deletion
      base.map((b, i) => (i === 4999 ? b ^ 1 : b)), // last byte
      base.map((b, i) => (i === 0 ? b ^ 0x80 : b)), // first byte
      base.slice(), // unchanged
      new Uint8Array(0),
    ];
    for (const e of edits) {
      const d = deltaOf('x', base, e);
      expect(sameBytes(applyDelta(base, d), e)).toBe(true);
      expect(d.middle.length).toBeLessThanOrEqual(6);
    }
    expect(() => applyDelta(base.subarray(0, 10), { fixture: 'x', head: 8, tail: 8, middle: '' })).toThrow(/does not fit/);
  });
});

describe('differential cases', () => {
  // the smallest fixture stream (x-ignore-shared: pc.ram is not in it), to keep 600 cases quick
  const small = fixtureFile('ignore-shared', 'stream.bin');
  const bases: FixtureBase[] = [{ name: 'ignore-shared', bytes: small, map: walkStream(small) }];

  it('are rebuilt from (seed, index), change the stream, and cover the targets', () => {
    const hows = new Set<string>();
    let changed = 0;
    for (let i = 0; i < 300; i++) {
      const a = diffCase(5, i, bases);
      const b = diffCase(5, i, bases);
      expect(b.how).toBe(a.how);
      expect(sameBytes(a.bytes, b.bytes)).toBe(true);
      if (!sameBytes(a.bytes, small)) changed++;
      hows.add(a.how.split(' ')[0]!);
    }
    expect(changed).toBeGreaterThan(270);
    for (const t of ['edit:flip', 'edit:truncate', 'target:ram-header', 'target:page', 'target:device', 'target:vmdesc', 'target:name', 'mutate']) {
      expect([...hows], t).toContain(t);
    }
  });
});

const loaded = (ram: Uint8Array, disks: Record<string, Uint8Array> = {}): LoadResult => ({ status: 'loaded', ms: 1, stderr: '', ram, disks });

describe('verdicts', () => {
  const mine = migstreamLoad(plain);

  it('migstream loads the fixture to its ground truth', () => {
    expect(mine.status).toBe('loaded');
    expect(sameBytes(mine.ram!, truth)).toBe(true);
  });

  it('both loading the same RAM agree; one byte of difference is a both-load-differ naming the page', () => {
    expect(judge(loaded(truth), mine, {})).toEqual({ verdict: 'both-load-equal' });
    const other = truth.slice();
    other[5 * 4096 + 17]! ^= 1;
    expect(judge(loaded(other), mine, {})).toEqual({ verdict: 'both-load-differ', differ: 'pc.ram differs at byte 20497 (page 5)' });
  });

  it('a disk QEMU wrote differently is a both-load-differ naming the sector', () => {
    const m: MigstreamResult = { ...mine, disks: new DiskImage() };
    const disk = new Uint8Array(1 << 20);
    expect(judge(loaded(truth, { 'ide0-hd1': disk }), m, {}).verdict).toBe('both-load-equal');
    disk[3 * 512 + 1] = 9;
    expect(judge(loaded(truth, { 'ide0-hd1': disk }), m, {})).toEqual({ verdict: 'both-load-differ', differ: 'disk ide0-hd1 differs at byte 1537 (sector 3)' });
  });

  it('rejections, crashes and hangs', () => {
    const rejected: LoadResult = {
      status: 'rejected',
      ms: 1,
      stderr: 'qemu-system-x86_64: Unknown combination of migration flags: 0x0\nqemu-system-x86_64: error while loading state section id 2(ram)\n',
    };
    const bad = migstreamLoad(plain.subarray(0, 100));
    expect(bad).toMatchObject({ status: 'rejected', code: 'TRUNCATED' });
    expect(judge(rejected, bad, {})).toMatchObject({ verdict: 'both-reject', qemu: { kind: 'wire', section: 'ram' } });
    expect(judge(rejected, mine, {})).toMatchObject({ verdict: 'qemu-rejects' });
    expect(judge(loaded(truth), bad, {})).toEqual({ verdict: 'migstream-rejects' });
    expect(judge({ status: 'crashed', ms: 1, stderr: '', exit: { code: null, signal: 'SIGABRT' } }, mine, {}).verdict).toBe('qemu-crash');
    expect(judge({ status: 'hang', ms: 15000, stderr: '' }, mine, {}).verdict).toBe('qemu-hang');
  });

  it("classifies QEMU's reasons: device sections by name, RAM and framing as wire format", () => {
    const q = (s: string) =>
      classifyQemu(
        s
          .split('\n')
          .map((l) => `qemu-system-x86_64: ${l}`)
          .join('\n'),
      );
    expect(q('Missing section footer for timer\nload of migration failed: Invalid argument')).toEqual({
      kind: 'device-state',
      section: 'timer',
      message: 'Missing section footer for timer',
    });
    expect(q("savevm: unsupported version 8193 for 'i8259' v1\nload of migration failed: Invalid argument")).toMatchObject({
      kind: 'device-state',
      section: 'i8259',
    });
    expect(q("Failed to load PIIX3:pci_irq_levels_vmstate\nerror while loading state for instance 0x0 of device '0000:00:01.0/PIIX3'")).toMatchObject({
      kind: 'device-state',
      section: '0000:00:01.0/PIIX3',
    });
    expect(q('Illegal RAM offset 201bb1000\nerror while loading state section id 2(ram)')).toMatchObject({ kind: 'wire', section: 'ram' });
    expect(q('Expected vmdescription section, but got 7\nUnknown savevm section type 9')).toEqual({ kind: 'wire', message: 'Unknown savevm section type 9' });
    expect(q("Length mismatch: pc.ram: 0x2000000 in != 0x2001000: Invalid argument\nerror while loading state for instance 0x0 of device 'ram'")).toEqual({
      kind: 'destination',
      section: 'ram',
      message: 'Length mismatch: pc.ram: 0x2000000 in != 0x2001000: Invalid argument',
    });
    expect(classifyQemu('Error unknown block device ide0-hd9\nqemu-system-x86_64: error while loading state section id 1(block)')).toMatchObject({
      kind: 'destination',
      section: 'block',
    });
  });

  it('documents only agreement and rejections for device state or the destination machine', () => {
    expect(documented({ verdict: 'qemu-rejects', qemu: { kind: 'device-state', section: 'timer', message: '' } })).toBe(true);
    expect(documented({ verdict: 'qemu-rejects', qemu: { kind: 'destination', section: 'ram', message: '' } })).toBe(true);
    expect(documented({ verdict: 'qemu-rejects', qemu: { kind: 'wire', section: 'ram', message: '' } })).toBe(false);
    // QEMU 8.1+'s multifd flush, which migstream reads on purpose (README)
    expect(documented({ verdict: 'qemu-rejects', qemu: { kind: 'wire', section: 'ram', message: 'Unknown combination of migration flags: 0x200' } })).toBe(
      true,
    );
    expect(documented({ verdict: 'qemu-rejects', qemu: { kind: 'wire', section: 'ram', message: 'Unknown combination of migration flags: 0x201' } })).toBe(
      false,
    );
    // a duplicated device-section footer: QEMU knows the device's length, the wire does not
    expect(documented({ verdict: 'qemu-rejects', qemu: { kind: 'wire', message: 'Unknown savevm section type 126' } })).toBe(true);
    for (const v of ['migstream-rejects', 'both-load-differ', 'qemu-crash', 'qemu-hang'] as const) expect(documented({ verdict: v })).toBe(false);
    // QEMU's crashes of docs/qemu-findings.md, on streams migstream rejects too; any other crash is news
    const abort = {
      kind: 'wire' as const,
      message: "../../hw/nvram/fw_cfg.c:726: fw_cfg_modify_bytes_read: Assertion `key < fw_cfg_max_entry(s) && len < UINT32_MAX' failed.",
    };
    expect(documented({ verdict: 'qemu-crash', qemu: abort, migstream: { status: 'rejected' } })).toBe(true);
    expect(documented({ verdict: 'qemu-crash', qemu: abort, migstream: { status: 'loaded' } })).toBe(false);
    expect(documented({ verdict: 'qemu-crash', qemu: { kind: 'wire', message: 'Configuration section missing' }, migstream: { status: 'rejected' } })).toBe(
      true,
    );
    // the machine type is the destination's business: migstream loads it, QEMU (with compress) crashes rejecting it
    const machine = { kind: 'destination' as const, message: "Machine type received is 'pc-i4_0fx-7.2' and local is 'pc-i440fx-7.2'" };
    expect(documented({ verdict: 'qemu-crash', qemu: machine, migstream: { status: 'loaded' } })).toBe(true);
    expect(documented({ verdict: 'qemu-crash', qemu: { kind: 'wire', message: 'Illegal RAM offset 1000' }, migstream: { status: 'rejected' } })).toBe(false);
    const glib = { kind: 'wire' as const, message: 'GLib: ../../../glib/gmem.c:136: failed to allocate 18446744073709551614 bytes' };
    expect(documented({ verdict: 'qemu-crash', qemu: glib, migstream: { status: 'rejected' } })).toBe(true);
  });
});
