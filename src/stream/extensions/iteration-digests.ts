import type { ByteReader } from '../../codec/byte-reader.js';
import type { ByteWriter } from '../../codec/byte-writer.js';
import { MigstreamError } from '../../codec/errors.js';
import { RAM_DIGEST } from '../constants.js';
import type { ExtensionEntry } from '../manifest.js';
import { type Extension, type RamBlocks, type RamHeader, type RecordContext, show } from './extension.js';

/** Parameters of the "iteration-digests" extension (per-iteration page digests, docs/extension-format.md §5). */
export interface IterationDigestsParams {
  /** RAM record flag of a digest record (0x800). */
  flag: number;
  /** Hash over each block's pages of an iteration: "xxh64" (XXH64, seed 0, 8-byte canonical digest). */
  algorithm: string;
}

/** Digest algorithms this migstream computes, with their digest length in bytes. */
export const DIGEST_ALGORITHMS: Readonly<Record<string, number>> = { xxh64: 8 };

const NAME = 'iteration-digests';

export function iterationDigestsEntry(algorithm = 'xxh64'): ExtensionEntry {
  return { name: NAME, version: 1, params: { flag: RAM_DIGEST, algorithm } };
}

/** migstream's digest record: a RAM record of type 0x800 after each block's pages of an iteration. */
export const iterationDigests: Extension = {
  name: NAME,
  version: 1,
  ramFlag: RAM_DIGEST,
  defaultEntry: () => iterationDigestsEntry(),
  declare(entry, _manifest, at, pageSize) {
    const { algorithm, length } = digestParams(entry, at, pageSize);
    return { readRam: (ctx, ram, r, rec) => readDigest(ctx, ram, r, rec, algorithm, length) };
  },
};

/**
 * Checks the iteration-digests parameters against the stream: BAD_MANIFEST
 * for a wrong flag or a page size that cannot hold it, UNSUPPORTED_EXTENSION
 * for an algorithm this migstream does not compute.
 */
function digestParams(entry: ExtensionEntry, offset: number, pageSize: number): IterationDigestsParams & { length: number } {
  const p = entry.params as Partial<IterationDigestsParams>;
  if (typeof p.algorithm !== 'string') throw new MigstreamError('BAD_MANIFEST', offset, `${NAME}: expected a string "algorithm"`);
  const length = Object.hasOwn(DIGEST_ALGORITHMS, p.algorithm) ? DIGEST_ALGORITHMS[p.algorithm] : undefined;
  if (length === undefined) {
    throw new MigstreamError(
      'UNSUPPORTED_EXTENSION',
      offset,
      `the stream uses extension "${NAME}" with algorithm ${JSON.stringify(p.algorithm).slice(0, 80)}, which this migstream does not support (supported: ${Object.keys(DIGEST_ALGORITHMS).join(', ')})`,
    );
  }
  if (p.flag !== RAM_DIGEST) {
    throw new MigstreamError('BAD_MANIFEST', offset, `${NAME}: record flag ${show(p.flag)}, expected 0x${RAM_DIGEST.toString(16)}`);
  }
  if (pageSize <= RAM_DIGEST) {
    throw new MigstreamError('BAD_MANIFEST', offset, `${NAME} needs pages above ${RAM_DIGEST} bytes for its record flag, the stream has ${pageSize}`);
  }
  return { flag: RAM_DIGEST, algorithm: p.algorithm, length };
}

// A digest record: block reference, be64 count, u8 length, digest.
function readDigest(ctx: RecordContext, ram: RamBlocks, r: ByteReader, rec: RamHeader, algorithm: string, length: number): undefined {
  const { at, addr } = rec;
  if (addr !== 0) throw new MigstreamError('BAD_RAM_RECORD', at, `digest record with address bits 0x${addr.toString(16)}: expected 0`);
  const block = ram.blockRef(r, rec.flags, at);
  const count = r.be64('a digest record count');
  const lenAt = r.offset;
  const len = r.u8('a digest length');
  if (len !== length) {
    throw new MigstreamError('BAD_RAM_RECORD', lenAt, `digest of ${len} bytes: ${algorithm} digests have ${length}`, { ramBlock: block.idstr });
  }
  const digest = r.bytes(len, 'the digest').slice();
  ram.lastBlock = block;
  ctx.emit({ type: 'ram-digest', block, iteration: ram.iteration, count, algorithm, digest, offset: at, wireBytes: r.pos - rec.start });
  return undefined;
}

/** A digest the record's u8 length can carry (checked before the record's header is written). */
export function checkDigestLength(digest: Uint8Array): void {
  if (digest.length === 0 || digest.length > 255) throw new RangeError(`a digest of ${digest.length} bytes`);
}

/** The digest record's body after its page header (flag RAM_DIGEST): be64 count, u8 length, the digest. */
export function writeDigestBody(w: ByteWriter, count: number, digest: Uint8Array): void {
  w.be64(count).u8(digest.length).bytes(digest);
}
