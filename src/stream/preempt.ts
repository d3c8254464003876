import { ByteReader } from '../codec/byte-reader.js';
import { concatBytes } from '../codec/concat.js';
import { MigstreamError, NeedMoreData } from '../codec/errors.js';
import { RAM_CONTINUE, RAM_EOS, RAM_PAGE, RAM_ZERO } from './constants.js';
import type { EventHandler, RamBlockInfo } from './events.js';

const EMPTY: Uint8Array = new Uint8Array(0);

/**
 * The postcopy-preempt channel (QEMU 7.2, docs/socket-migration.md): bare RAM
 * records, no header or sections, ended by one EOS. Like QEMU's
 * ram_load_postcopy it takes ZERO and PAGE records only. Emits page events
 * against the RAMBlocks the main channel declared.
 */
export class PreemptDecoder {
  private buf: Uint8Array = EMPTY;
  private base = 0;
  private last: RamBlockInfo | undefined;
  private ended = false;
  private readonly blocks: Map<string, RamBlockInfo>;

  constructor(
    blocks: RamBlockInfo[],
    private readonly pageSize: number,
    private readonly emit: EventHandler,
  ) {
    this.blocks = new Map(blocks.map((b) => [b.idstr, b]));
  }

  get finished(): boolean {
    return this.ended;
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    if (this.ended)
      throw new MigstreamError('TRAILING_DATA', this.base + this.buf.length, 'expected the end of the preempt channel after its EOS, found more bytes');
    this.buf = this.buf.length === 0 ? chunk : concatBytes([this.buf, chunk]);
    const r = new ByteReader(this.buf, this.base);
    let done = 0;
    try {
      while (!this.ended && r.remaining > 0) {
        this.record(r);
        done = r.pos;
      }
    } catch (e) {
      if (!(e instanceof NeedMoreData)) throw e;
    }
    if (this.ended) {
      done = r.pos;
      if (r.remaining > 0) throw new MigstreamError('TRAILING_DATA', r.offset, 'expected the end of the preempt channel after its EOS, found more bytes');
    }
    this.base += done;
    this.buf = this.buf.subarray(done).slice();
  }

  end(): void {
    if (!this.ended && (this.buf.length > 0 || this.base > 0)) {
      throw new MigstreamError('TRUNCATED', this.base + this.buf.length, 'unexpected end of the preempt channel: expected a RAM record or its EOS');
    }
  }

  private record(r: ByteReader): void {
    const at = r.offset;
    const start = r.pos;
    const hi = r.be32('a RAM record header');
    const lo = r.be32('a RAM record header');
    const mask = this.pageSize - 1;
    const flags = lo & mask;
    const addr = hi * 0x100000000 + (lo - flags);
    const type = flags & ~RAM_CONTINUE;
    if (type === RAM_EOS) {
      this.ended = true;
      return;
    }
    if (type !== RAM_ZERO && type !== RAM_PAGE) {
      throw new MigstreamError(
        'BAD_RAM_RECORD',
        at,
        `Unknown combination of migration flags: 0x${flags.toString(16)} (the preempt channel carries ZERO and PAGE records)`,
      );
    }
    let block = this.last;
    if (!(flags & RAM_CONTINUE)) {
      const idAt = r.offset;
      const idstr = r.str8('a RAMBlock idstr', 'UNKNOWN_RAMBLOCK');
      block = this.blocks.get(idstr);
      if (!block) throw new MigstreamError('UNKNOWN_RAMBLOCK', idAt, `Unknown ramblock "${idstr}", cannot accept migration`);
    } else if (!block) {
      throw new MigstreamError('BAD_RAM_RECORD', at, 'Ack, bad migration stream! (CONTINUE with no previous RAMBlock)');
    }
    let fill = 0;
    let data = EMPTY;
    let dataOffset = 0;
    if (type === RAM_ZERO) fill = r.u8('the fill byte of a ZERO page');
    else {
      dataOffset = r.offset;
      data = r.bytes(this.pageSize, 'the data of a PAGE record');
    }
    if (addr + this.pageSize > block.length) {
      throw new MigstreamError('BAD_OFFSET', at, `Illegal RAM offset 0x${addr.toString(16)}: block is 0x${block.length.toString(16)} bytes`, {
        ramBlock: block.idstr,
      });
    }
    this.last = block;
    const kind = type === RAM_ZERO ? 'zero' : 'normal';
    this.emit({ type: 'page', kind, block, offset: addr, pageSize: this.pageSize, fill, data, dataOffset, wireBytes: r.pos - start });
  }
}
