/**
 * The differential verdict: what migstream makes of a case (decoded as
 * `extract` decodes it, RAM and disks in memory) against what a real QEMU 7.2
 * destination made of the same bytes. Agreement is both loading with equal
 * pc.ram and disks, or both rejecting; everything else is a disagreement to
 * explain (docs/fuzzing.md).
 */
import { MigstreamError } from '../codec/errors.js';
import { StreamDecoder } from '../stream/decoder.js';
import { DiskImage } from '../stream/disk-image.js';
import type { StreamWarning } from '../stream/events.js';
import { RamImage } from '../stream/ram-image.js';
import type { LoadResult } from './qemu-dest.js';

export interface MigstreamResult {
  status: 'loaded' | 'rejected';
  ms: number;
  code?: string;
  offset?: number;
  message?: string;
  warnings: StreamWarning[];
  /** pc.ram as a destination would hold it (starting from `initialRam`, or zeros). */
  ram?: Uint8Array;
  disks: DiskImage;
}

/** Guest RAM a case may make migstream allocate; QEMU refuses other sizes than its own anyway. */
const MAX_RAM = 512 << 20;

export function migstreamLoad(bytes: Uint8Array, initialRam?: Uint8Array): MigstreamResult {
  const t0 = performance.now();
  const ram = new RamImage(MAX_RAM);
  const disks = new DiskImage();
  const warnings: StreamWarning[] = [];
  const d = new StreamDecoder((ev) => {
    if (ev.type === 'ram-blocks') {
      ram.setBlocks(ev.blocks, ev.offset);
      // x-ignore-shared: the destination starts with the guest's RAM; pages the stream sends land on it
      const pc = ram.blocks.get('pc.ram');
      if (initialRam && pc?.length === initialRam.length) pc.set(initialRam);
    } else if (ev.type === 'page') ram.apply(ev);
    else if (ev.type === 'block-chunk') disks.chunk(ev);
    else if (ev.type === 'warning') warnings.push(ev.warning);
  });
  try {
    d.push(bytes);
    d.end();
  } catch (e) {
    if (!(e instanceof MigstreamError)) throw e; // a crash of ours: the plain fuzzer's business, loud here too
    return { status: 'rejected', ms: performance.now() - t0, code: e.code, offset: e.offset, message: e.message, warnings, disks };
  }
  return { status: 'loaded', ms: performance.now() - t0, warnings, ram: ram.blocks.get('pc.ram') ?? initialRam, disks };
}

export type Verdict =
  | 'both-load-equal'
  | 'both-load-differ' // always a bug
  | 'both-reject'
  | 'qemu-rejects' // classify: device-state semantics (name the section) or wire format
  | 'migstream-rejects' // a bug unless documented strictness
  | 'qemu-crash'
  | 'qemu-hang';

export interface QemuReason {
  /**
   * 'device-state': a device section's content or the destination's device set;
   * 'destination': the stream does not fit the destination's machine (RAMBlock names and sizes,
   * disks, machine type, capabilities, page size), which a stream alone cannot tell;
   * 'wire': the stream's framing, RAM or block records.
   */
  kind: 'device-state' | 'destination' | 'wire';
  /** The section QEMU names, when it names one. */
  section?: string;
  /** QEMU's first error line (without the program name). */
  message: string;
}

const ITERABLE = new Set(['ram', 'block', 'dirty-bitmap']);

/** QEMU 7.2's words for a stream that does not fit this destination (ram.c, block.c, savevm.c). */
const DESTINATION = [
  /Length mismatch: /,
  /Unknown ramblock "/,
  /Mismatched GPAs for block /,
  /Mismatched RAM page size /,
  /Error unknown block device /,
  /Machine type received is '/,
  /Received TARGET_PAGE_BITS is /,
  /Capability \S+ is off, but received capability is on/,
];

/** Why QEMU rejected, from its error_report lines. */
export function classifyQemu(stderr: string): QemuReason {
  const lines = stderr
    .split('\n')
    .map((l) => l.replace(/^qemu-system-\w+: /, '').trim())
    .filter((l) => l && !/^Expected vmdescription section/.test(l));
  const text = lines.join('\n');
  const named =
    /error while loading state for instance 0x[0-9a-f]+ of device '([^']+)'/.exec(text)?.[1] ??
    /error while loading state section id \d+\(([^)]+)\)/.exec(text)?.[1] ??
    /Missing section footer for (\S+)/.exec(text)?.[1] ??
    /Unknown savevm section or instance '([^']+)'/.exec(text)?.[1] ??
    /Mismatched section id in footer for (\S+)/.exec(text)?.[1] ??
    /unsupported version \d+ for '([^']+)'/.exec(text)?.[1] ??
    /Failed to load ([^:\s]+):/.exec(text)?.[1];
  const message = lines[0] ?? '(no message)';
  const fit = DESTINATION.find((re) => re.test(text));
  if (fit) return { kind: 'destination', section: named, message: lines.find((l) => fit.test(l)) ?? message };
  if (named !== undefined) return { kind: ITERABLE.has(named) ? 'wire' : 'device-state', section: named, message };
  return { kind: 'wire', message };
}

export interface Judgement {
  verdict: Verdict;
  qemu?: QemuReason;
  /** Where RAM or a disk differs, for both-load-differ. */
  differ?: string;
}

export function judge(q: LoadResult, m: MigstreamResult, diskSizes: Record<string, number>): Judgement {
  if (q.status === 'crashed') return { verdict: 'qemu-crash', qemu: classifyQemu(q.stderr) };
  if (q.status === 'hang') return { verdict: 'qemu-hang' };
  if (q.status === 'rejected') return { verdict: m.status === 'rejected' ? 'both-reject' : 'qemu-rejects', qemu: classifyQemu(q.stderr) };
  if (m.status === 'rejected') return { verdict: 'migstream-rejects' };
  const differ = compare(q, m, diskSizes);
  return differ ? { verdict: 'both-load-differ', differ } : { verdict: 'both-load-equal' };
}

function compare(q: LoadResult, m: MigstreamResult, diskSizes: Record<string, number>): string | undefined {
  const want = m.ram ?? new Uint8Array(q.ram!.length);
  const got = q.ram!;
  if (want.length !== got.length) return `pc.ram: ${want.length} bytes from migstream, ${got.length} in QEMU`;
  const at = firstDifference(want, got);
  if (at >= 0) return `pc.ram differs at byte ${at} (page ${Math.floor(at / 4096)})`;
  for (const [device, dest] of Object.entries(q.disks ?? {})) {
    const mine = new Uint8Array(dest.length);
    m.disks.read(device, 0, mine);
    const size = diskSizes[device] ?? dest.length;
    const d = firstDifference(mine.subarray(0, size), dest.subarray(0, size));
    if (d >= 0) return `disk ${device} differs at byte ${d} (sector ${Math.floor(d / 512)})`;
  }
  return undefined;
}

function firstDifference(a: Uint8Array, b: Uint8Array): number {
  if (Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0) return -1;
  for (let i = 0; i < a.length; i += 4096) {
    const n = Math.min(4096, a.length - i);
    if (Buffer.compare(Buffer.from(a.buffer, a.byteOffset + i, n), Buffer.from(b.buffer, b.byteOffset + i, n)) !== 0) {
      for (let j = i; j < i + n; j++) if (a[j] !== b[j]) return j;
    }
  }
  return -1;
}
