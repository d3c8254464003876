import type { ByteReader } from '../codec/byte-reader.js';
import { MigstreamError } from '../codec/errors.js';
import { hex } from './bytes.js';
import { VM_CONFIGURATION, VM_FILE_MAGIC, VM_FILE_VERSION, VM_FILE_VERSION_COMPAT, VM_SUBSECTION } from './constants.js';
import type { ConfigurationInfo } from './events.js';

/** The stream header: be32 magic, be32 version; returns the version (3). */
export function readStreamHeader(r: ByteReader): number {
  const magic = r.be32('the stream magic');
  const version = r.be32('the stream version');
  if (magic !== VM_FILE_MAGIC) {
    throw new MigstreamError('BAD_MAGIC', 0, `expected magic 0x5145564d ("QEVM"), found 0x${hex(magic, 8)}`);
  }
  if (version === VM_FILE_VERSION_COMPAT) {
    throw new MigstreamError('BAD_VERSION', 4, "SaveVM v2 format is obsolete and don't work anymore");
  }
  if (version !== VM_FILE_VERSION) {
    throw new MigstreamError('BAD_VERSION', 4, `Unsupported migration stream version: expected 3, found ${version}`);
  }
  return version;
}

/**
 * The configuration record: 0x07, be32 len + machine name, then subsections
 * (0x05 str8 name be32 version payload). Undefined when the stream has none
 * (machine types <= 2.3).
 */
export function readConfigurationRecord(r: ByteReader, maxMachineName: number): ConfigurationInfo | undefined {
  const start = r.pos;
  if (r.peekU8('a section type') !== VM_CONFIGURATION) return undefined;
  r.u8();
  const lenAt = r.offset;
  const len = r.be32('the machine name length');
  if (len > maxMachineName) {
    throw new MigstreamError('LIMIT', lenAt, `machine name of ${len} bytes exceeds the limit of ${maxMachineName}`);
  }
  const machine = new TextDecoder().decode(r.bytes(len, 'the machine name'));
  const capabilities: string[] = [];
  let targetPageBits: number | undefined;
  let uuid: Uint8Array | undefined;
  while (r.peekU8('a section type') === VM_SUBSECTION) {
    r.u8();
    const nameAt = r.offset;
    const name = r.str8('a subsection name', 'BAD_CONFIGURATION');
    const version = r.be32('a subsection version');
    if (version !== 1) {
      throw new MigstreamError('BAD_CONFIGURATION', nameAt, `subsection ${name}: expected version 1, found ${version}`);
    }
    if (name === 'configuration/target-page-bits') {
      targetPageBits = r.be32('target page bits');
    } else if (name === 'configuration/capabilities') {
      const count = r.be32('the capability count');
      if (count > 64) throw new MigstreamError('LIMIT', nameAt, `${count} capabilities in the configuration`);
      for (let i = 0; i < count; i++) capabilities.push(r.str8('a capability name', 'BAD_CONFIGURATION'));
    } else if (name === 'configuration/uuid') {
      uuid = r.bytes(16, 'the uuid').slice();
    } else {
      throw new MigstreamError('BAD_CONFIGURATION', nameAt, `unknown subsection "${name}" in the configuration`);
    }
  }
  if (targetPageBits !== undefined) {
    if (targetPageBits < 10 || targetPageBits > 16) {
      throw new MigstreamError('BAD_CONFIGURATION', r.offset, `target page bits ${targetPageBits} out of range 10..16`);
    }
  }
  const raw = r.buf.slice(start, r.pos);
  return { machine, capabilities, targetPageBits, uuid, raw };
}
