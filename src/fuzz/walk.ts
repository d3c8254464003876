/**
 * A tolerant structural walk over a (mostly) valid QEMU 7.2 stream for the
 * fuzzer: where the length fields, ids and record headers are, where each
 * record starts, and which byte ranges hold XBZRLE deltas, zlib data, page
 * payloads, device data and the vmdesc JSON. Mutators use it to hit length
 * fields with extreme values and to splice streams at record boundaries.
 * It stops quietly at the first thing it does not understand.
 */

export type FieldKind =
  | 'len8' // str8 length
  | 'len16' // command or XBZRLE length
  | 'len32' // machine name, compressed page, vmdesc length
  | 'len64' // RAMBlock used_length in MEM_SIZE
  | 'addr64' // RAMBlock mr_addr (x-ignore-shared)
  | 'id32' // section id (header or footer)
  | 'val32' // instance id, version, subsection version, page bits
  | 'count32' // capability count
  | 'cmd16'
  | 'ramhdr' // be64 offset|flags of a RAM record (MEM_SIZE: total|flags)
  | 'blkhdr' // be64 sector<<9|flags of a block record
  | 'byte'; // a type or flag byte (section type, encoding flag, fill)

export interface Field {
  at: number;
  size: 1 | 2 | 4 | 8;
  kind: FieldKind;
}

export type RegionKind = 'xbzrle' | 'zlib' | 'lz4' | 'page' | 'device' | 'json' | 'name' | 'chunk';

export interface Region {
  at: number;
  len: number;
  kind: RegionKind;
}

export interface SectionMark {
  at: number;
  type: number;
  id: number;
  idstr: string;
}

export interface StreamMap {
  fields: Field[];
  /** START/PART/END headers. */
  sections: SectionMark[];
  regions: Region[];
  /** Offsets where a top-level unit or a record starts (ascending). */
  marks: number[];
  /** Offset of the device-state tail (first FULL section or EOF), or -1. */
  tailAt: number;
  /** How far the walk got. */
  walked: number;
}

const be32 = (b: Uint8Array, p: number): number => ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;

class Stop extends Error {}

export function walkStream(b: Uint8Array): StreamMap {
  const fields: Field[] = [];
  const regions: Region[] = [];
  const marks: number[] = [];
  const sections: SectionMark[] = [];
  let p = 0;
  let tailAt = -1;
  let pageSize = 4096;
  let ignoreShared = false;
  let last = false; // a RAMBlock was named since the last MEM_SIZE: CONTINUE is possible (across sections too)
  const ids = new Map<number, string>();
  const need = (n: number): void => {
    if (p + n > b.length) throw new Stop();
  };
  const field = (size: 1 | 2 | 4 | 8, kind: FieldKind): number => {
    need(size);
    fields.push({ at: p, size, kind });
    let v = 0;
    for (let i = 0; i < size; i++) v = v * 256 + b[p + i]!;
    p += size;
    return v;
  };
  const region = (len: number, kind: RegionKind): void => {
    need(len);
    if (len > 0) regions.push({ at: p, len, kind });
    p += len;
  };
  const str8 = (): string => {
    const n = field(1, 'len8');
    need(n);
    const s = Buffer.from(b.buffer, b.byteOffset + p, n).toString('latin1');
    region(n, 'name');
    return s;
  };

  try {
    marks.push(0);
    field(4, 'val32');
    field(4, 'val32');
    if (b[p] === 0x07) {
      marks.push(p);
      field(1, 'byte');
      const n = field(4, 'len32');
      region(n, 'name');
      while (b[p] === 0x05) {
        marks.push(p);
        field(1, 'byte');
        const name = str8();
        field(4, 'val32');
        if (name === 'configuration/target-page-bits') {
          const bits = field(4, 'val32');
          if (bits >= 10 && bits <= 16) pageSize = 1 << bits;
        } else if (name === 'configuration/capabilities') {
          const count = field(4, 'count32');
          for (let i = 0; i < count; i++) if (str8() === 'x-ignore-shared') ignoreShared = true;
        } else if (name === 'configuration/uuid') {
          region(16, 'name');
        } else break;
      }
    }
    for (;;) {
      need(1);
      const type = b[p]!;
      if (type === 0x00 || type === 0x04) {
        tailAt = p;
        walkTail();
        break;
      }
      marks.push(p);
      field(1, 'byte');
      if (type === 0x08) {
        field(2, 'cmd16');
        const n = field(2, 'len16');
        region(n, 'chunk');
        continue;
      }
      if (type !== 0x01 && type !== 0x02 && type !== 0x03) break;
      const at = p - 1;
      const id = field(4, 'id32');
      let idstr = ids.get(id);
      if (type === 0x01) {
        idstr = str8();
        ids.set(id, idstr);
        field(4, 'val32');
        field(4, 'val32');
      }
      sections.push({ at, type, id, idstr: idstr ?? '' });
      if (idstr === 'ram') walkRam();
      else if (idstr === 'block') walkBlock();
      else break;
      if (b[p] === 0x7e) {
        marks.push(p);
        field(1, 'byte');
        field(4, 'id32');
      }
    }
  } catch (e) {
    if (!(e instanceof Stop)) throw e;
  }
  return { fields, sections, regions, marks, tailAt, walked: p };

  function walkRam(): void {
    for (;;) {
      marks.push(p);
      need(8);
      const lo = be32(b, p + 4);
      const flags = lo & (pageSize - 1);
      const total = be32(b, p) * 0x100000000 + (lo - flags);
      field(8, 'ramhdr');
      const type = flags & ~0x20;
      const ref = (): void => {
        if (flags & 0x20) {
          if (!last) throw new Stop();
        } else str8();
        last = true;
      };
      switch (type) {
        case 0x02:
          ref();
          field(1, 'byte');
          break;
        case 0x08:
          ref();
          region(pageSize, 'page');
          break;
        case 0x40: {
          ref();
          field(1, 'byte');
          const n = field(2, 'len16');
          region(n, 'xbzrle');
          break;
        }
        case 0x100: {
          ref();
          const n = field(4, 'len32');
          region(n, 'zlib');
          break;
        }
        case 0x400: {
          // migstream's LZ4 page (behind an extension manifest)
          ref();
          const n = field(4, 'len32');
          region(n, 'lz4');
          break;
        }
        case 0x04: {
          let left = total;
          while (left > 0) {
            str8();
            const len = field(8, 'len64');
            if (ignoreShared) field(8, 'addr64');
            if (len === 0 || len > left) throw new Stop();
            left -= len;
          }
          last = false;
          break;
        }
        case 0x10:
          return;
        case 0x200:
          break;
        default:
          throw new Stop();
      }
    }
  }

  function walkBlock(): void {
    for (;;) {
      marks.push(p);
      need(8);
      const flags = be32(b, p + 4) & 0x1ff;
      field(8, 'blkhdr');
      if (flags & 0x01) {
        str8();
        const len = flags & 0x10 ? field(4, 'len32') : 1 << 20; // variable-size chunk (block-chunks extension)
        if (flags & 0x20) {
          // compressed chunk (chunk-compression extension): codec byte, be32 length, payload
          const codec = b[p];
          field(1, 'byte');
          region(field(4, 'len32'), codec === 1 ? 'zlib' : 'lz4');
        } else if (!(flags & 0x08)) region(len, 'chunk');
      } else if (!(flags & 0x04) && !(flags & 0x02)) throw new Stop();
      if (flags & 0x02) return;
    }
  }

  function walkTail(): void {
    while (b[p] === 0x04) {
      marks.push(p);
      field(1, 'byte');
      const id = field(4, 'id32');
      str8();
      field(4, 'val32');
      field(4, 'val32');
      // Device data has no length: its footer is the next `7e id` followed by a section or EOF.
      let q = p;
      for (;;) {
        q = b.indexOf(0x7e, q);
        if (q < 0 || q + 5 >= b.length) throw new Stop();
        if (be32(b, q + 1) === id && (b[q + 5] === 0x04 || b[q + 5] === 0x00)) break;
        q++;
      }
      region(q - p, 'device');
      marks.push(p);
      field(1, 'byte');
      field(4, 'id32');
    }
    need(1);
    if (b[p] !== 0x00) throw new Stop();
    marks.push(p);
    field(1, 'byte');
    if (p < b.length && b[p] === 0x06) {
      marks.push(p);
      field(1, 'byte');
      const n = field(4, 'len32');
      region(Math.min(n, b.length - p), 'json');
    }
  }
}
