import type { ByteReader } from '../codec/byte-reader.js';
import { MigstreamError } from '../codec/errors.js';
import { DBM_EOS, type DirtyBitmapRecord, readDirtyBitmapRecord } from './dirty-bitmap.js';
import type { EventHandler } from './events.js';

/**
 * The "dirty-bitmap" section's reader: the aliases a record without names
 * refers to, and each bitmap's granularity from its START.
 */
export class BitmapRecordReader {
  private node = '';
  private bitmap = '';
  private readonly granularity = new Map<string, number>();

  /** Reads one record and emits it; true at the section's EOS. */
  read(r: ByteReader, emit: EventHandler): boolean {
    const at = r.offset;
    const rec = readDirtyBitmapRecord(r);
    // a record without names refers to the last ones named, as in QEMU's loader
    this.node = rec.node ?? this.node;
    this.bitmap = rec.bitmap ?? this.bitmap;
    this.check(rec, at);
    emit({ type: 'dirty-bitmap', record: rec, node: this.node, bitmap: this.bitmap });
    return (rec.flags & DBM_EOS) !== 0;
  }

  // QEMU's dirty_bitmap_load_bits: the bits buffer must hold exactly the bitmap's serialisation of
  // the range, padded to 32 bytes as send_bitmap_bits pads it (checked once START gave the granularity).
  private check(rec: DirtyBitmapRecord, at: number): void {
    const key = `${this.node}\u0000${this.bitmap}`;
    if (rec.kind === 'start') this.granularity.set(key, rec.granularity!);
    const granularity = this.granularity.get(key);
    if (rec.kind !== 'bits' || rec.data === undefined || !granularity) return;
    const needed = Math.ceil(Math.ceil((rec.sectors! * 512) / granularity) / 64) * 8;
    if (rec.data.length < needed || rec.data.length > Math.ceil(needed / 32) * 32) {
      throw new MigstreamError(
        'BAD_SECTION',
        at + rec.raw.length - rec.data.length - 8,
        `Migrated bitmap granularity doesn't match the destination bitmap '${this.bitmap}' granularity: ${rec.sectors} sectors at granularity ${granularity} need ${needed} bytes of bits (up to ${Math.ceil(needed / 32) * 32} padded), the record carries ${rec.data.length}`,
        { section: 'dirty-bitmap' },
      );
    }
  }
}
