import { concatBytes } from '../codec/concat.js';
import { COMMAND_NAMES, VM_COMMAND } from './constants.js';
import type { CommandInfo } from './commands.js';
import type { ReturnPathEvent } from './return-path.js';

const utf8 = new TextEncoder();

/** One QEMU_VM_COMMAND record (0x08, be16 cmd, be16 len, payload) for `info`, as savevm.c's senders write it. */
export function encodeCommand(info: CommandInfo): Uint8Array {
  const command = COMMAND_NAMES.indexOf(info.name);
  let payload: Uint8Array;
  switch (info.name) {
    case 'PING':
      payload = be32(info.value);
      break;
    case 'PACKAGED':
      payload = be32(info.length);
      break;
    case 'POSTCOPY_ADVISE':
      payload = info.targetPageSize === undefined ? new Uint8Array(0) : join(be64(info.hostPageSizes ?? info.targetPageSize), be64(info.targetPageSize));
      break;
    case 'POSTCOPY_RAM_DISCARD': {
      const name = utf8.encode(info.block);
      payload = join(new Uint8Array([0, name.length]), name, new Uint8Array([0]), ...info.ranges.flatMap(([s, l]) => [be64(s), be64(l)]));
      break;
    }
    case 'RECV_BITMAP': {
      const name = utf8.encode(info.block);
      payload = join(new Uint8Array([name.length]), name);
      break;
    }
    default:
      payload = new Uint8Array(0);
  }
  const head = new Uint8Array(5);
  head[0] = VM_COMMAND;
  new DataView(head.buffer).setUint16(1, command);
  new DataView(head.buffer).setUint16(3, payload.length);
  return join(head, payload);
}

/** PACKAGED: the command with len 4 (be32 N), then the N bytes of the nested stream. */
export function encodePackaged(nested: Uint8Array): Uint8Array {
  return join(encodeCommand({ name: 'PACKAGED', length: nested.length }), nested);
}

const RP_TYPES = { SHUT: 1, PONG: 2, REQ_PAGES_ID: 3, REQ_PAGES: 4, RECV_BITMAP: 5, RESUME_ACK: 6 } as const;

/** One return-path message as migration.c writes it; RECV_BITMAP with `bitmap` adds its out-of-frame part. */
export function encodeReturnPath(ev: ReturnPathEvent, bitmap?: Uint8Array): Uint8Array {
  let payload: Uint8Array;
  let after: Uint8Array = new Uint8Array(0);
  switch (ev.type) {
    case 'SHUT':
    case 'PONG':
    case 'RESUME_ACK':
      payload = be32(ev.value);
      break;
    case 'REQ_PAGES':
      payload = join(be64(ev.start), be32(ev.length));
      break;
    case 'REQ_PAGES_ID': {
      const name = utf8.encode(ev.block);
      payload = join(be64(ev.start), be32(ev.length), new Uint8Array([name.length]), name);
      break;
    }
    case 'RECV_BITMAP': {
      const name = utf8.encode(ev.block);
      payload = join(new Uint8Array([name.length]), name);
      const map = bitmap ?? new Uint8Array(ev.bitmapBytes);
      after = join(be64(map.length), map, new Uint8Array([0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]));
      break;
    }
  }
  const head = new Uint8Array(4);
  new DataView(head.buffer).setUint16(0, RP_TYPES[ev.type]);
  new DataView(head.buffer).setUint16(2, payload.length);
  return join(head, payload, after);
}

function be32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v);
  return b;
}

function be64(v: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(v));
  return b;
}

function join(...parts: Uint8Array[]): Uint8Array {
  return concatBytes(parts);
}
