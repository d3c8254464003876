import { MigstreamError } from '../codec/errors.js';
import { VM_EOF, VM_SECTION_FOOTER, VM_SECTION_FULL, VM_VMDESCRIPTION } from './constants.js';
import type { DeviceSection, StreamWarning, TailInfo } from './events.js';

interface VmdescDevice {
  name: string;
  instance_id: number;
}

/**
 * Splits the device-state tail (FULL sections, EOF, optional vmdesc) into
 * named sections. Device data has no length field, so a section ends at the
 * first footer `7e <id>` that is followed by the next section's header (its
 * name taken from the vmdesc when there is one) or by EOF.
 * `base` is the stream offset of tail[0].
 *
 * Unless `strict`, a damaged trailer after EOF (truncated, invalid JSON, not
 * matching the device sections, other bytes) is a warning, not an error:
 * QEMU 7.2 reads the vmdesc only to skip it, so such a stream still loads.
 */
export function parseTail(tail: Uint8Array, base: number, footers: boolean, maxVmdescBytes = Infinity, strict = true): TailInfo {
  try {
    return parseStrict(tail, base, footers, maxVmdescBytes);
  } catch (e) {
    if (strict || !(e instanceof MigstreamError)) throw e;
    const loose = withoutVmdesc(tail, base, footers, false) ?? withoutVmdesc(tail, base, footers, true);
    if (!loose) throw e;
    const problem = trailerProblem(tail, tail.length - loose.vmdescBytes, base, maxVmdescBytes) ?? e;
    const warning: StreamWarning = { code: problem.code, offset: problem.offset, message: `damaged vmdesc trailer (QEMU 7.2 skips it): ${problem.detail}` };
    return { ...loose, warning };
  }
}

/** What is wrong with the trailer at tail[p..] (after EOF), in the words of the strict parse; undefined if it looks whole. */
function trailerProblem(tail: Uint8Array, p: number, base: number, maxVmdescBytes: number): MigstreamError | undefined {
  if (p >= tail.length) return undefined;
  if (tail[p] !== VM_VMDESCRIPTION) {
    // QEMU 7.2: "Expected vmdescription section, but got %d", and the load goes on
    return new MigstreamError('TRAILING_DATA', base + p, `expected the vmdesc (0x06) or the end of the stream after EOF, found 0x${tail[p]!.toString(16)}`);
  }
  if (p + 5 > tail.length) return new MigstreamError('TRUNCATED', base + tail.length, 'unexpected end of stream: expected the vmdesc length');
  const declared = be32(tail, p + 1);
  const have = tail.length - p - 5;
  if (declared > maxVmdescBytes) return new MigstreamError('LIMIT', base + p + 1, `vmdesc JSON of ${declared} bytes exceeds the limit of ${maxVmdescBytes}`);
  if (declared > have) return new MigstreamError('TRUNCATED', base + tail.length, 'unexpected end of stream: expected the rest of the vmdesc JSON');
  if (declared < have) return new MigstreamError('TRAILING_DATA', base + p + 5 + declared, 'expected the end of the stream after the vmdesc, found more bytes');
  try {
    JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(tail.subarray(p + 5)));
  } catch (e) {
    return new MigstreamError('BAD_VMDESC', base + p + 5, `expected the vmdesc JSON, found invalid JSON (${(e as Error).message})`);
  }
  return undefined;
}

/**
 * The device sections split without the vmdesc's help, up to the first EOF
 * that ends them; whatever follows is the trailer. `anyTrailer`: EOF may be
 * followed by any byte (first tried: only by the end or 0x06). Undefined when
 * the device sections themselves do not parse.
 */
function withoutVmdesc(tail: Uint8Array, base: number, footers: boolean, anyTrailer: boolean): TailInfo | undefined {
  if (!footers) return { devices: [], vmdescBytes: 0, parsed: false };
  const devices: DeviceSection[] = [];
  let p = 0;
  while (p < tail.length && tail[p] === VM_SECTION_FULL) {
    const header = readHeader(tail, p);
    if (!header) return undefined;
    const close = findSectionEnd(tail, header.end, tail.length, header.sectionId, undefined, anyTrailer);
    if (close < 0) return undefined;
    devices.push({ ...header, offset: base + p, size: close - header.end });
    p = close + 5;
  }
  if (p >= tail.length || tail[p] !== VM_EOF) return undefined;
  return { devices, vmdescBytes: tail.length - p - 1, parsed: true };
}

function parseStrict(tail: Uint8Array, base: number, footers: boolean, maxVmdescBytes: number): TailInfo {
  const vmdescAt = findVmdesc(tail);
  let vmdesc: { devices?: VmdescDevice[] } | undefined;
  let end = tail.length;
  if (vmdescAt >= 0) {
    const declared = tail.length - vmdescAt - 6;
    if (declared > maxVmdescBytes) {
      throw new MigstreamError('LIMIT', base + vmdescAt + 2, `vmdesc JSON of ${declared} bytes exceeds the limit of ${maxVmdescBytes}`);
    }
    try {
      vmdesc = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(tail.subarray(vmdescAt + 6))) as typeof vmdesc;
    } catch (e) {
      throw new MigstreamError('BAD_VMDESC', base + vmdescAt + 6, `expected the vmdesc JSON, found invalid JSON (${(e as Error).message})`);
    }
    end = vmdescAt + 1; // up to and including EOF
  }
  const expected = Array.isArray(vmdesc?.devices) ? vmdesc.devices : undefined;
  const devices: DeviceSection[] = [];
  let p = 0;
  if (!footers) {
    // Without footers nothing marks where device data ends: keep the tail whole.
    return { devices, vmdesc, vmdescBytes: vmdescAt >= 0 ? tail.length - vmdescAt - 1 : 0, parsed: false };
  }
  while (p < end && tail[p] === VM_SECTION_FULL) {
    const header = readHeader(tail, p);
    if (!header) throw truncatedOrBad(tail, base, p, 'a device section header');
    const next = expected?.[devices.length + 1];
    const dataStart = header.end;
    const close = findSectionEnd(tail, dataStart, end, header.sectionId, next);
    if (close < 0) {
      throw new MigstreamError(
        vmdescAt >= 0 ? 'BAD_SECTION' : 'TRUNCATED',
        base + tail.length,
        `expected the footer of device section "${header.idstr}" (section id ${header.sectionId}) followed by ${next ? `section "${next.name}"` : 'a section or EOF'}`,
      );
    }
    if (expected && (expected[devices.length]?.name !== header.idstr || expected[devices.length]?.instance_id !== header.instanceId)) {
      throw new MigstreamError(
        'BAD_VMDESC',
        base + p,
        `device section "${header.idstr}" ${header.instanceId} does not match the vmdesc's device #${devices.length}`,
      );
    }
    devices.push({ ...header, offset: base + p, size: close - dataStart });
    p = close + 5;
  }
  if (p >= end || tail[p] !== VM_EOF) {
    throw truncatedOrBad(tail, base, p, 'EOF (0x00) after the device sections');
  }
  p++;
  if (vmdescAt < 0 && p < tail.length) {
    if (tail[p] === VM_VMDESCRIPTION) {
      const declared = p + 5 <= tail.length ? be32(tail, p + 1) : Infinity;
      if (declared !== Infinity && declared > maxVmdescBytes) {
        throw new MigstreamError('LIMIT', base + p + 1, `vmdesc JSON of ${declared} bytes exceeds the limit of ${maxVmdescBytes}`);
      }
      if (p + 5 + declared < tail.length) {
        throw new MigstreamError('TRAILING_DATA', base + p + 5 + declared, 'expected the end of the stream after the vmdesc, found more bytes');
      }
      throw new MigstreamError('TRUNCATED', base + tail.length, 'unexpected end of stream: expected the rest of the vmdesc JSON');
    }
    throw new MigstreamError('TRAILING_DATA', base + p, `expected the vmdesc (0x06) or the end of the stream after EOF, found 0x${tail[p]!.toString(16)}`);
  }
  if (expected && expected.length !== devices.length) {
    throw new MigstreamError('BAD_VMDESC', base + p, `the vmdesc lists ${expected.length} devices, the stream has ${devices.length}`);
  }
  return { devices, vmdesc, vmdescBytes: vmdescAt >= 0 ? tail.length - vmdescAt - 1 : 0, parsed: true };
}

/** Finds `00 06 be32(len) {…` where the JSON runs exactly to the end; -1 if absent. */
function findVmdesc(tail: Uint8Array): number {
  // The JSON holds no 0x00 byte, so the first candidate from the end is the one.
  for (let i = tail.length - 7; i >= 0; i--) {
    if (tail[i] !== VM_EOF || tail[i + 1] !== VM_VMDESCRIPTION) continue;
    const len = ((tail[i + 2]! << 24) | (tail[i + 3]! << 16) | (tail[i + 4]! << 8) | tail[i + 5]!) >>> 0;
    if (i + 6 + len === tail.length && tail[i + 6] === 0x7b) return i;
  }
  return -1;
}

interface Header {
  sectionId: number;
  idstr: string;
  instanceId: number;
  versionId: number;
  end: number;
}

// FULL header: 0x04 be32 id str8 idstr be32 instance be32 version.
function readHeader(t: Uint8Array, p: number): Header | undefined {
  if (p + 6 > t.length) return undefined;
  const len = t[p + 5]!;
  const end = p + 6 + len + 8;
  if (len === 0 || end > t.length) return undefined;
  for (let i = p + 6; i < p + 6 + len; i++) if (t[i]! < 0x20 || t[i]! > 0x7e) return undefined;
  return {
    sectionId: be32(t, p + 1),
    idstr: new TextDecoder().decode(t.subarray(p + 6, p + 6 + len)),
    instanceId: be32(t, p + 6 + len),
    versionId: be32(t, p + 10 + len),
    end,
  };
}

function findSectionEnd(t: Uint8Array, from: number, end: number, id: number, next: VmdescDevice | undefined, anyTrailer = false): number {
  // `end` is one past the EOF byte: the last section's footer must sit right before it.
  for (let q = t.indexOf(VM_SECTION_FOOTER, from); q >= 0 && q + 5 < end; q = t.indexOf(VM_SECTION_FOOTER, q + 1)) {
    if (be32(t, q + 1) !== id) continue;
    const after = q + 5;
    if (t[after] === VM_EOF && (after === end - 1 || t[after + 1] === VM_VMDESCRIPTION || anyTrailer)) return q;
    if (t[after] !== VM_SECTION_FULL) continue;
    const h = readHeader(t, after);
    if (!h || h.end > end) continue;
    const plausible = next ? h.idstr === next.name && h.instanceId === next.instance_id : h.instanceId <= 0xffff && h.versionId <= 0xffff;
    if (plausible) return q;
  }
  return -1;
}

function truncatedOrBad(t: Uint8Array, base: number, p: number, what: string): MigstreamError {
  if (p >= t.length) return new MigstreamError('TRUNCATED', base + t.length, `unexpected end of stream: expected ${what}`);
  return new MigstreamError('BAD_SECTION', base + p, `expected ${what}, found 0x${t[p]!.toString(16).padStart(2, '0')}`);
}

function be32(t: Uint8Array, p: number): number {
  return ((t[p]! << 24) | (t[p + 1]! << 16) | (t[p + 2]! << 8) | t[p + 3]!) >>> 0;
}
