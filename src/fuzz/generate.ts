/**
 * Structure-aware generation: streams with valid framing and hostile values
 * (huge MEM_SIZE totals, many RAMBlocks, offsets past block ends, bad
 * CONTINUE, XBZRLE with hostile run lengths, compressed lengths at and above
 * compressBound, block records with huge sectors, commands with bad lengths,
 * vmdesc with bad JSON or lying lengths, deep and odd device tails), and
 * hostile inputs for the page decoders on their own.
 */
import { ByteWriter } from '../codec/byte-writer.js';
import { compressBound } from '../stream/constants.js';
import type { RamBlockInfo } from '../stream/events.js';
import { RAM_SECTION, BLOCK_SECTION, SeedWriter } from './seed-writer.js';
import type { Rng } from './rng.js';
import { Lz4Compressor } from '../codec/lz4-block.js';
import { TEXT, hostileManifest, hostileXbzrle, hostileZlib, hostileLz4, lz4Literals, name, pageData, rawStr8 } from './hostile-payloads.js';

export { hostileXbzrle, hostileZlib, hostileLz4, msgpack, hostileManifest, lz4Literals } from './hostile-payloads.js';

interface GenState {
  pageSize: number;
  blocks: RamBlockInfo[];
  shared: boolean;
  ramStarted: boolean;
  blockStarted: boolean;
  /** A manifest declared lz4-pages (as far as the generator knows). */
  lz4: boolean;
}

function offsetIn(r: Rng, st: GenState, b: RamBlockInfo | undefined): number {
  const ps = st.pageSize;
  const len = b?.length ?? 4 * ps;
  const pages = Math.max(1, Math.floor(len / ps));
  switch (r.int(12)) {
    case 0:
      return Math.floor(len / ps) * ps; // one past the end
    case 1:
      return Math.max(0, len - ps);
    case 2:
      return r.pick([2 ** 32, 2 ** 40, 2 ** 52, 2 ** 53 - ps, 2 ** 31]);
    case 3:
      return Math.ceil(len / ps) * ps; // a block length that is not a page multiple
    default:
      return r.int(Math.min(pages, 64)) * ps;
  }
}

function ramRecords(r: Rng, w: SeedWriter, st: GenState, first: boolean): void {
  const ps = st.pageSize;
  if (first || r.chance(0.05)) {
    const n = r.chance(0.03) ? r.pick([1024, 1025, 2000]) : r.int(5);
    const blocks: RamBlockInfo[] = [];
    for (let i = 0; i < n; i++) {
      const len =
        r.int(10) === 0 ? r.pick([0, 1, ps - 1, ps + 1, 2 ** 40, 2 ** 40 + ps, 2 ** 53 - 1, 2 ** 33, 64 << 20]) : (1 + r.skewed(r.chance(0.05) ? 20 : 5)) * ps;
      blocks.push({ idstr: n > 8 ? `b${i}` : name(r), length: len, mrAddr: r.chance(0.5) ? 0 : r.int(2 ** 32) });
    }
    const total = blocks.reduce((a, b) => a + b.length, 0);
    const declared = r.int(10) === 0 ? r.pick([0, total + ps, Math.max(0, total - ps), 2 ** 41, 2 ** 40, 2 ** 53 - ps]) : total;
    w.w.be64(Math.min(declared - (declared % ps), 2 ** 53 - ps) + 0x04);
    for (const b of blocks) {
      rawStr8(r, w.w, b.idstr);
      w.w.be64(Math.min(b.length, 2 ** 53 - 1));
      if (st.shared) w.w.be64(b.mrAddr ?? 0);
    }
    st.blocks = blocks;
  }
  const count = r.chance(0.05) ? r.int(40) : r.int(6);
  let last: RamBlockInfo | undefined;
  for (let i = 0; i < count; i++) {
    const b = st.blocks.length && r.chance(0.9) ? r.pick(st.blocks) : { idstr: name(r), length: 4 * ps };
    const cont = last !== undefined && last === b ? r.chance(0.8) : r.chance(0.03);
    const offset = offsetIn(r, st, b);
    const ref = (flag: number): void => {
      w.w.be64(offset + flag + (cont ? 0x20 : 0));
      if (!cont) rawStr8(r, w.w, b.idstr);
      last = b;
    };
    switch (r.int(15)) {
      case 0:
      case 1:
        ref(0x02);
        w.w.u8(r.chance(0.8) ? 0 : r.int(256));
        break;
      case 2:
      case 3:
        ref(0x08);
        w.w.bytes(pageData(r, ps));
        break;
      case 4:
      case 5:
      case 6: {
        ref(0x40);
        const delta = hostileXbzrle(r, ps);
        w.w.u8(r.chance(0.95) ? 0x01 : r.int(256));
        const lie = r.int(20);
        w.w.be16(lie === 0 ? r.pick([0, ps, ps + 1, 0xffff]) : lie === 1 ? delta.length + 1 : delta.length & 0xffff);
        w.w.bytes(delta);
        break;
      }
      case 7:
      case 8:
      case 9: {
        ref(0x100);
        const z = hostileZlib(r, ps);
        const lie = r.int(16);
        const cb = compressBound(ps);
        w.w.be32(lie === 0 ? r.pick([0, cb, cb + 1, 0xffffffff, 2 ** 31]) : lie === 1 ? z.length + 1 : z.length);
        w.w.bytes(z);
        if (lie === 0 && r.chance(0.5)) w.w.bytes(r.bytes(r.int(cb + 2)));
        break;
      }
      case 13:
        if (st.lz4 || r.chance(0.1)) {
          ref(0x400);
          const blk = r.chance(0.5) ? lz4Literals(pageData(r, ps)) : hostileLz4(r, ps);
          const lie = r.int(16);
          w.w.be32(lie === 0 ? r.pick([0, ps + 16 + Math.ceil(ps / 255), 0xffffffff]) : lie === 1 ? blk.length + 1 : blk.length);
          w.w.bytes(blk);
          break;
        }
        w.w.be64(offset + 0x08 + 0x20);
        if (!cont && r.chance(0.5)) break;
        w.w.bytes(pageData(r, ps));
        break;
      case 10:
        w.w.be64(r.chance(0.5) ? 0x200 : offset + r.pick([0x80, 0x1000, 0x800, 0x400, 0x0c, 0x42, 0x300, 0x01, 0x30]));
        break;
      case 11:
        if (r.chance(0.2)) {
          w.w.be64(0x10);
          return; // an EOS in the middle: the rest follows as top-level bytes
        }
        break;
      default:
        w.w.be64(offset + 0x08 + 0x20);
        if (!cont && r.chance(0.5)) break; // CONTINUE with nothing before
        w.w.bytes(pageData(r, ps));
    }
  }
  if (r.chance(0.95)) w.eos();
}

const LZ4 = new Lz4Compressor(1);

function blockRecords(r: Rng, w: SeedWriter): void {
  const count = r.int(6);
  for (let i = 0; i < count; i++) {
    const sector = r.chance(0.7) ? r.int(8) * 2048 : r.pick([2 ** 44 - 1, 2 ** 43, 2 ** 32, 2 ** 23, 2 ** 23 - 1]);
    const roll = r.int(10);
    if (roll < 5) {
      w.w.be64(sector * 512 + 0x09);
      rawStr8(r, w.w, r.pick(['ide0-hd1', 'ide0-hd0', '', 'virtio0', 'd'.repeat(255)]));
    } else if (roll === 5) {
      w.w.be64(sector * 512 + 0x01);
      rawStr8(r, w.w, 'ide0-hd1');
      w.w.bytes(new Uint8Array(r.chance(0.02) ? 1 << 20 : r.int(4096))); // mostly cut short
    } else if (roll === 6) {
      w.w.be64(r.pick([0, 50, 100, 101, 2 ** 30]) * 512 + 0x04);
    } else if (roll === 7) {
      // A variable-size chunk (block-chunks extension): be32 length, then the data unless zero.
      const zero = r.chance(0.3);
      w.w.be64(sector * 512 + 0x11 + (zero ? 0x08 : 0));
      rawStr8(r, w.w, 'ide0-hd1');
      const len = r.pick([512, 4096, 0, 511, 1 << 20, (1 << 20) + 512, 0xffffffff, 512 * (1 + r.int(16))]);
      w.w.be32(len);
      if (!zero) w.w.bytes(new Uint8Array(Math.min(len, r.chance(0.9) ? 8192 : 100)));
    } else if (roll === 8) {
      // A compressed chunk (chunk-compression extension): length, codec byte, be32 clen, payload.
      w.w.be64(sector * 512 + r.pick([0x31, 0x31, 0x39, 0x21, 0x35]));
      rawStr8(r, w.w, 'ide0-hd1');
      const len = r.pick([4096, 8192, 65536, 0, 511, 1 << 20, 0xffffffff]);
      w.w.be32(len).u8(r.pick([1, 2, 2, 0, 3, 255]));
      const payload = r.chance(0.5) ? LZ4.compress(new Uint8Array(Math.min(len, 8192)).fill(r.int(256))) : r.bytes(r.int(200));
      w.w.be32(r.chance(0.8) ? payload.length : r.pick([0, len, len - 1, 0xffffffff]));
      w.w.bytes(payload);
    } else {
      w.w.be64(sector * 512 + r.pick([0x10, 0x20, 0x40, 0x100, 0x03, 0x05, 0x0c, 0x1f0, 0x0a]));
    }
  }
  if (r.chance(0.95)) w.blockEos();
}

function vmdescJson(r: Rng, devices: { name: string; instance: number }[]): Uint8Array {
  const list = devices.map((d) => ({ name: d.name, instance_id: d.instance, vmsd_name: d.name, version: 1, fields: [] }));
  switch (r.int(14)) {
    case 0:
      return TEXT.encode('{"devices": [' + '['.repeat(r.pick([100, 5000, 100000])));
    case 1:
      return TEXT.encode('{"devices":' + '['.repeat(10000) + ']'.repeat(10000) + '}');
    case 2:
      return Uint8Array.of(0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d); // invalid UTF-8
    case 3:
      return TEXT.encode(JSON.stringify({ devices: 'none' }));
    case 4:
      return TEXT.encode(JSON.stringify({ devices: [null, 1, 'x', { name: 5 }] }));
    case 5:
      return TEXT.encode(JSON.stringify({ devices: list.slice(1) }));
    case 6:
      return TEXT.encode(JSON.stringify({ devices: [...list].reverse() }));
    case 7:
      return TEXT.encode('{"devices": []}' + ' '.repeat(r.int(10)) + '}');
    case 8:
      return TEXT.encode(`{"__proto__": {"devices": 1}, "devices": ${JSON.stringify(list)}}`);
    default:
      return TEXT.encode(JSON.stringify({ page_size: 4096, devices: list }));
  }
}

function tail(r: Rng, w: SeedWriter): void {
  const n = r.chance(0.05) ? r.int(300) : r.int(5);
  const devices: { name: string; instance: number }[] = [];
  for (let i = 0; i < n; i++) {
    const id = 3 + i + (r.chance(0.05) ? r.int(1000) : 0);
    const nm = r.chance(0.9) ? r.pick(['timer', 'cpu', 'apic', 'globalstate', 'e1000', '0000:00:01.1/ide']) : name(r);
    const inst = r.chance(0.9) ? 0 : r.pick([1, 0xffff, 0x10000, 0xffffffff]);
    devices.push({ name: nm, instance: inst });
    w.w.u8(0x04).be32(id);
    rawStr8(r, w.w, nm);
    w.w.be32(inst).be32(r.chance(0.9) ? 1 + r.int(4) : r.pick([0, 0xffff, 0x10000, 0xffffffff]));
    const data = new ByteWriter(64);
    const parts = r.int(5);
    for (let k = 0; k < parts; k++) {
      switch (r.int(5)) {
        case 0: // a footer-like sequence for this section inside its data
          data.u8(0x7e).be32(id);
          if (r.chance(0.5)) data.u8(r.pick([0x04, 0x00]));
          break;
        case 1:
          data
            .u8(0x04)
            .be32(id + 1)
            .u8(3)
            .bytes(TEXT.encode('cpu'))
            .be32(0)
            .be32(1);
          break;
        case 2:
          data.bytes(new Uint8Array(r.skewed(r.chance(0.02) ? 16 : 8)));
          break;
        default:
          data.bytes(r.bytes(r.int(32)));
      }
    }
    w.w.bytes(data.take());
    if (r.chance(0.95)) w.w.u8(0x7e).be32(r.chance(0.95) ? id : id + 1);
  }
  const roll = r.int(20);
  if (roll === 0) return; // no EOF
  w.w.u8(0x00);
  if (roll < 4) return; // no vmdesc (suppress-vmdesc)
  const json = vmdescJson(r, devices);
  const lie = r.int(12);
  w.w.u8(r.chance(0.97) ? 0x06 : r.int(256));
  w.w.be32(lie === 0 ? json.length + 1 + r.int(100) : lie === 1 ? Math.max(0, json.length - 1 - r.int(5)) : lie === 2 ? 0xffffffff : json.length);
  w.w.bytes(json);
  if (r.chance(0.05)) w.w.bytes(r.bytes(1 + r.int(8)));
}

/** A whole stream with valid framing and hostile values. */
export function hostileStream(r: Rng): Uint8Array {
  const bitsRoll = r.int(20);
  const pageBits = bitsRoll === 0 ? r.pick([10, 10, 13, 16]) : bitsRoll === 1 ? r.pick([9, 17, 0, 0xffffffff]) : undefined;
  const ps = pageBits !== undefined && pageBits >= 10 && pageBits <= 16 ? 1 << pageBits : 4096;
  const w = new SeedWriter(ps);
  if (r.chance(0.02)) w.w.be32(r.pick([0x5145564d, 0x5145564e, 0])).be32(r.pick([2, 3, 4]));
  else w.header();
  const caps: string[] = [];
  if (r.chance(0.9)) {
    const roll = r.int(30);
    const machine = roll === 0 ? 'm'.repeat(r.pick([256, 257, 5000])) : 'pc-i440fx-7.2';
    w.w
      .u8(0x07)
      .be32(roll === 1 ? 0xffffffff : machine.length)
      .bytes(TEXT.encode(machine));
    if (pageBits !== undefined) w.w.u8(0x05).str8('configuration/target-page-bits').be32(1).be32(pageBits);
    if (r.chance(0.3)) {
      const all = ['x-ignore-shared', 'xbzrle', 'postcopy-ram', 'compress', 'multifd', 'x'.repeat(255), ''];
      const n = r.chance(0.02) ? r.pick([64, 65, 1000]) : r.int(4);
      for (let i = 0; i < n; i++) caps.push(r.pick(all));
      w.w
        .u8(0x05)
        .str8('configuration/capabilities')
        .be32(r.chance(0.95) ? 1 : 2)
        .be32(r.chance(0.95) ? caps.length : caps.length + 3);
      for (const c of caps) rawStr8(r, w.w, c);
    }
    if (r.chance(0.1)) w.w.u8(0x05).str8('configuration/uuid').be32(1).bytes(r.bytes(16));
    if (r.chance(0.03))
      w.w
        .u8(0x05)
        .str8(r.pick(['configuration/other', '']))
        .be32(1);
  }
  let lz4 = false;
  if (r.chance(0.15)) {
    const payload = hostileManifest(r, ps);
    lz4 = payload.length > 0;
    w.w.u8(0x08).be16(0x6d73).be16(Math.min(payload.length, 0xffff)).bytes(payload.subarray(0, 0xffff));
    if (r.chance(0.05))
      w.w
        .u8(0x08)
        .be16(0x6d73)
        .be16(payload.length & 0xffff)
        .bytes(payload.subarray(0, 0xffff));
  }
  const st: GenState = { pageSize: ps, blocks: [], shared: caps.includes('x-ignore-shared'), ramStarted: false, blockStarted: false, lz4 };
  const footers = r.chance(0.95);
  const units = 1 + r.int(r.chance(0.1) ? 30 : 6);
  for (let u = 0; u < units; u++) {
    const roll = r.int(20);
    if (roll < 12) {
      const id = r.chance(0.97) ? 2 : r.int(5);
      if (!st.ramStarted || r.chance(0.05)) {
        w.start(r.chance(0.97) ? RAM_SECTION : { ...RAM_SECTION, versionId: r.pick([3, 5]) });
        st.ramStarted = true;
        ramRecords(r, w, st, true);
      } else {
        if (r.chance(0.8)) w.part(id);
        else w.end(id);
        ramRecords(r, w, st, false);
      }
      if (footers) w.footer(r.chance(0.97) ? 2 : r.int(5));
    } else if (roll < 15) {
      if (!st.blockStarted) w.start(BLOCK_SECTION);
      else w.part(1);
      st.blockStarted = true;
      blockRecords(r, w);
      if (footers) w.footer(1);
    } else if (roll < 18) {
      const cmd = r.chance(0.8) ? r.int(11) : r.pick([0, 11, 0xffff, 7]);
      const len = r.pick([0, 4, 16, 1, 3, r.int(64), 0xffff]);
      w.w
        .u8(0x08)
        .be16(cmd)
        .be16(len)
        .bytes(r.bytes(Math.min(len, r.chance(0.9) ? len : r.int(len + 1))));
    } else if (roll === 18) {
      w.w.u8(r.pick([0x01, 0x02, 0x03, 0x05, 0x06, 0x07, 0x09, 0x7e, 0xff]));
      if (r.chance(0.5)) w.w.be32(r.int(4));
    } else {
      w.w
        .u8(r.pick([0x01, 0x04]))
        .be32(r.int(10))
        .str8(r.pick(['timer', 'ram', 'block', 'dirty-bitmap', '']))
        .be32(0)
        .be32(r.int(5));
    }
  }
  tail(r, w);
  return w.take();
}
