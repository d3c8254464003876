import { ByteWriter } from '../codec/byte-writer.js';
import type { RamBlockInfo } from '../stream/events.js';

/** Sections of the seeds the corpus and the generator write, numbered as QEMU numbers them. */
export const RAM_SECTION = { sectionId: 2, idstr: 'ram', instanceId: 0, versionId: 4 };
export const BLOCK_SECTION = { sectionId: 1, idstr: 'block', instanceId: 0, versionId: 1 };

/** Writes records the way QEMU does, tracking CONTINUE like the sender's last_sent_block. */
export class SeedWriter {
  readonly w = new ByteWriter();
  private last: string | undefined;

  constructor(readonly pageSize = 4096) {}

  header(): this {
    this.w.be32(0x5145564d).be32(3);
    return this;
  }

  configuration(machine: string, opts: { capabilities?: string[]; pageBits?: number; uuid?: Uint8Array } = {}): this {
    const name = new TextEncoder().encode(machine);
    this.w.u8(0x07).be32(name.length).bytes(name);
    if (opts.pageBits !== undefined) this.w.u8(0x05).str8('configuration/target-page-bits').be32(1).be32(opts.pageBits);
    if (opts.capabilities?.length) {
      this.w.u8(0x05).str8('configuration/capabilities').be32(1).be32(opts.capabilities.length);
      for (const c of opts.capabilities) this.w.str8(c);
    }
    if (opts.uuid) this.w.u8(0x05).str8('configuration/uuid').be32(1).bytes(opts.uuid);
    return this;
  }

  raw(bytes: Uint8Array): this {
    this.w.bytes(bytes);
    return this;
  }

  start(s: { sectionId: number; idstr: string; instanceId: number; versionId: number }): this {
    this.w.u8(0x01).be32(s.sectionId).str8(s.idstr).be32(s.instanceId).be32(s.versionId);
    return this;
  }

  part(id: number): this {
    this.w.u8(0x02).be32(id);
    return this;
  }

  end(id: number): this {
    this.w.u8(0x03).be32(id);
    return this;
  }

  footer(id: number): this {
    this.w.u8(0x7e).be32(id);
    return this;
  }

  command(cmd: number, payload: Uint8Array): this {
    this.w.u8(0x08).be16(cmd).be16(payload.length).bytes(payload);
    return this;
  }

  memSize(blocks: RamBlockInfo[], ignoreShared = false): this {
    this.w.be64(blocks.reduce((n, b) => n + b.length, 0) + 0x04);
    for (const b of blocks) {
      this.w.str8(b.idstr).be64(b.length);
      if (ignoreShared) this.w.be64(b.mrAddr ?? 0);
    }
    this.last = undefined;
    return this;
  }

  private ref(idstr: string, offset: number, flag: number): void {
    if (idstr === this.last) this.w.be64(offset + (flag | 0x20));
    else this.w.be64(offset + flag).str8(idstr);
    this.last = idstr;
  }

  zero(idstr: string, offset: number, fill = 0): this {
    this.ref(idstr, offset, 0x02);
    this.w.u8(fill);
    return this;
  }

  page(idstr: string, offset: number, data: Uint8Array): this {
    this.ref(idstr, offset, 0x08);
    this.w.bytes(data);
    return this;
  }

  xbzrle(idstr: string, offset: number, delta: Uint8Array): this {
    this.ref(idstr, offset, 0x40);
    this.w.u8(0x01).be16(delta.length).bytes(delta);
    return this;
  }

  compressed(idstr: string, offset: number, z: Uint8Array): this {
    this.ref(idstr, offset, 0x100);
    this.w.be32(z.length).bytes(z);
    return this;
  }

  flush(): this {
    this.w.be64(0x200);
    return this;
  }

  eos(): this {
    this.w.be64(0x10);
    return this;
  }

  blockChunk(device: string, sector: number, data: Uint8Array | undefined): this {
    this.w.be64(sector * 512 + 0x01 + (data ? 0 : 0x08)).str8(device);
    if (data) this.w.bytes(data);
    return this;
  }

  blockProgress(percent: number): this {
    this.w.be64(percent * 512 + 0x04);
    return this;
  }

  blockEos(): this {
    this.w.be64(0x02);
    return this;
  }

  take(): Uint8Array {
    return this.w.take();
  }
}
