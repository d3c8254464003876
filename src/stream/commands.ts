import type { ByteReader } from '../codec/byte-reader.js';
import { MigstreamError } from '../codec/errors.js';
import { COMMAND_LENGTHS, COMMAND_NAMES, VM_COMMAND, VM_SECTION_FOOTER, VM_SECTION_FULL } from './constants.js';
import type { DeviceSection } from './events.js';

/** What a QEMU_VM_COMMAND says, decoded (savevm.c's loadvm_process_command and its handlers). */
export type CommandInfo =
  | { name: 'PING'; value: number }
  | { name: 'POSTCOPY_ADVISE'; hostPageSizes?: number; targetPageSize?: number }
  | { name: 'POSTCOPY_RAM_DISCARD'; block: string; ranges: [start: number, length: number][] }
  | { name: 'PACKAGED'; length: number }
  | { name: 'RECV_BITMAP'; block: string }
  | { name: 'OPEN_RETURN_PATH' | 'POSTCOPY_LISTEN' | 'POSTCOPY_RUN' | 'POSTCOPY_RESUME' };

/** One command of a PACKAGED blob (offsets are absolute stream offsets). */
export interface PackagedCommand {
  command: number;
  name: string;
  payload: Uint8Array;
  info: CommandInfo;
  offset: number;
}

/** PACKAGED's nested stream: commands and device FULL sections, no header, no EOF. */
export interface PackageInfo {
  /** The N bytes after the command record, exactly as read (a transcoder writes them back unchanged). */
  bytes: Uint8Array;
  /** Stream offset of bytes[0]. */
  offset: number;
  /** In order; `before` counts the device sections that precede each. */
  commands: (PackagedCommand & { before: number })[];
  devices: DeviceSection[];
}

const MIB = 1 << 20;

/** Decodes one command's payload; throws what QEMU's loader rejects. `at`: offset of the 0x08 byte. */
export function commandInfo(command: number, payload: Uint8Array, at: number, pageSize: number): CommandInfo {
  const name = COMMAND_NAMES[command]!;
  const v = new DataView(payload.buffer, payload.byteOffset, payload.length);
  const be64 = (p: number) => v.getUint32(p) * 2 ** 32 + v.getUint32(p + 4);
  switch (name) {
    case 'PING':
      return { name, value: v.getUint32(0) };
    case 'PACKAGED':
      return { name, length: v.getUint32(0) };
    case 'POSTCOPY_ADVISE': {
      if (payload.length === 0) return { name };
      if (payload.length !== 16) throw new MigstreamError('BAD_COMMAND', at + 3, `CMD_POSTCOPY_ADVISE invalid length (${payload.length}): expected 0 or 16`);
      const targetPageSize = be64(8);
      if (targetPageSize !== pageSize) {
        throw new MigstreamError('BAD_COMMAND', at + 13, `Postcopy needs matching target page sizes (source ${targetPageSize}, this stream ${pageSize})`);
      }
      return { name, hostPageSizes: be64(0), targetPageSize };
    }
    case 'POSTCOPY_RAM_DISCARD': {
      // u8 version 0, u8 name length, name, NUL, then be64 start/length pairs.
      if (payload.length < 3) throw new MigstreamError('BAD_COMMAND', at + 3, `CMD_POSTCOPY_RAM_DISCARD invalid length (${payload.length})`);
      if (payload[0] !== 0) throw new MigstreamError('BAD_COMMAND', at + 5, `CMD_POSTCOPY_RAM_DISCARD invalid version (${payload[0]})`);
      const nameLen = payload[1]!;
      const pairs = payload.length - 3 - nameLen;
      if (pairs < 0 || pairs % 16 !== 0) throw new MigstreamError('BAD_COMMAND', at + 3, `CMD_POSTCOPY_RAM_DISCARD invalid length (${payload.length})`);
      if (payload[2 + nameLen] !== 0)
        throw new MigstreamError('BAD_COMMAND', at + 7 + nameLen, 'CMD_POSTCOPY_RAM_DISCARD: expected the NUL after the RAMBlock name');
      const block = new TextDecoder().decode(payload.subarray(2, 2 + nameLen));
      const ranges: [number, number][] = [];
      for (let p = 3 + nameLen; p < payload.length; p += 16) ranges.push([be64(p), be64(p + 8)]);
      return { name, block, ranges };
    }
    case 'RECV_BITMAP': {
      const len = payload[0] ?? -1;
      if (len < 0 || payload.length !== 1 + len)
        throw new MigstreamError('BAD_COMMAND', at + 3, `CMD_RECV_BITMAP: expected a length byte and that many name bytes, found ${payload.length} bytes`);
      return { name, block: new TextDecoder().decode(payload.subarray(1)) };
    }
    case 'OPEN_RETURN_PATH':
    case 'POSTCOPY_LISTEN':
    case 'POSTCOPY_RUN':
    case 'POSTCOPY_RESUME':
      return { name };
    default:
      throw new MigstreamError('UNSUPPORTED', at, `command ${name}: COLO streams are not supported`);
  }
}

/** Reads PACKAGED's N bytes (they follow the command record, outside its length) and decodes them. */
export function readPackage(r: ByteReader, length: number, maxBytes: number, pageSize: number): PackageInfo {
  if (length > maxBytes) throw new MigstreamError('LIMIT', r.offset - 4, `PACKAGED blob of ${length} bytes exceeds the limit of ${maxBytes}`);
  const offset = r.offset;
  const bytes = r.bytes(length, length > MIB ? 'the PACKAGED blob (device state)' : 'the PACKAGED blob').slice();
  return decodePackage(bytes, offset, pageSize);
}

/**
 * The nested stream: commands (0x08) and FULL sections (0x04). Device data has
 * no length: a section ends at a footer `7e <id>` followed by the package's
 * end, a command, or a plausible FULL header (as QEMU writes them).
 */
export function decodePackage(bytes: Uint8Array, offset: number, pageSize: number): PackageInfo {
  const info: PackageInfo = { bytes, offset, commands: [], devices: [] };
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  let p = 0;
  while (p < bytes.length) {
    const type = bytes[p]!;
    if (type === VM_COMMAND) {
      if (p + 5 > bytes.length) throw new MigstreamError('BAD_COMMAND', offset + p, 'PACKAGED: a command header runs past the package');
      const command = v.getUint16(p + 1);
      const len = v.getUint16(p + 3);
      if (command === 0 || command >= COMMAND_NAMES.length) throw new MigstreamError('BAD_COMMAND', offset + p + 1, `Invalid command ${command} (in PACKAGED)`);
      const name = COMMAND_NAMES[command]!;
      const fixed = COMMAND_LENGTHS[command]!;
      if (fixed >= 0 && len !== fixed) throw new MigstreamError('BAD_COMMAND', offset + p + 3, `${name} received bad length ${len}: expected ${fixed}`);
      if (name === 'PACKAGED') throw new MigstreamError('BAD_COMMAND', offset + p, 'PACKAGED inside PACKAGED');
      if (p + 5 + len > bytes.length) throw new MigstreamError('BAD_COMMAND', offset + p + 3, `PACKAGED: ${name}'s ${len} bytes run past the package`);
      const payload = bytes.subarray(p + 5, p + 5 + len);
      info.commands.push({
        command,
        name,
        payload,
        info: commandInfo(command, payload, offset + p, pageSize),
        offset: offset + p,
        before: info.devices.length,
      });
      p += 5 + len;
    } else if (type === VM_SECTION_FULL) {
      const h = fullHeader(bytes, v, p);
      if (!h) throw new MigstreamError('BAD_SECTION', offset + p, 'PACKAGED: expected a device section header');
      const close = sectionEnd(bytes, v, h.end, h.sectionId);
      if (close < 0)
        throw new MigstreamError(
          'BAD_SECTION',
          offset + bytes.length,
          `PACKAGED: expected the footer of device section "${h.idstr}" (section id ${h.sectionId})`,
        );
      info.devices.push({ sectionId: h.sectionId, idstr: h.idstr, instanceId: h.instanceId, versionId: h.versionId, offset: offset + p, size: close - h.end });
      p = close + 5;
    } else {
      throw new MigstreamError(
        'BAD_SECTION',
        offset + p,
        `PACKAGED: expected a command (0x08) or a device section (0x04), found 0x${type.toString(16).padStart(2, '0')}`,
      );
    }
  }
  return info;
}

function fullHeader(b: Uint8Array, v: DataView, p: number) {
  if (p + 6 > b.length) return undefined;
  const len = b[p + 5]!;
  const end = p + 6 + len + 8;
  if (len === 0 || end > b.length) return undefined;
  for (let i = p + 6; i < p + 6 + len; i++) if (b[i]! < 0x20 || b[i]! > 0x7e) return undefined;
  const idstr = new TextDecoder().decode(b.subarray(p + 6, p + 6 + len));
  return { sectionId: v.getUint32(p + 1), idstr, instanceId: v.getUint32(p + 6 + len), versionId: v.getUint32(p + 10 + len), end };
}

function sectionEnd(b: Uint8Array, v: DataView, from: number, id: number): number {
  for (let q = b.indexOf(VM_SECTION_FOOTER, from); q >= 0 && q + 5 <= b.length; q = b.indexOf(VM_SECTION_FOOTER, q + 1)) {
    if (v.getUint32(q + 1) !== id) continue;
    const after = q + 5;
    if (after === b.length) return q;
    if (b[after] === VM_COMMAND && after + 5 <= b.length) {
      const c = v.getUint16(after + 1);
      if (c > 0 && c < COMMAND_NAMES.length && after + 5 + v.getUint16(after + 3) <= b.length) return q;
    }
    const h = b[after] === VM_SECTION_FULL ? fullHeader(b, v, after) : undefined;
    if (h && h.instanceId <= 0xffff && h.versionId <= 0xffff) return q;
  }
  return -1;
}
