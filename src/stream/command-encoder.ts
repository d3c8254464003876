import { ByteWriter } from '../codec/byte-writer.js';
import { COMMAND_NAMES, VM_COMMAND } from './constants.js';
import type { CommandInfo } from './commands.js';
import type { ReturnPathEvent } from './return-path.js';

/** One QEMU_VM_COMMAND record (0x08, be16 cmd, be16 len, payload) for `info`, as savevm.c's senders write it. */
export function encodeCommand(info: CommandInfo): Uint8Array {
  const p = new ByteWriter(64);
  switch (info.name) {
    case 'PING':
      p.be32(info.value);
      break;
    case 'PACKAGED':
      p.be32(info.length);
      break;
    case 'POSTCOPY_ADVISE':
      if (info.targetPageSize !== undefined) p.be64(info.hostPageSizes ?? info.targetPageSize).be64(info.targetPageSize);
      break;
    case 'POSTCOPY_RAM_DISCARD': // u8 version 0, str8 name, NUL, be64 start/length pairs
      p.u8(0).str8(info.block).u8(0);
      for (const [start, length] of info.ranges) p.be64(start).be64(length);
      break;
    case 'RECV_BITMAP':
      p.str8(info.block);
      break;
  }
  const payload = p.take();
  return new ByteWriter(5 + payload.length).u8(VM_COMMAND).be16(COMMAND_NAMES.indexOf(info.name)).be16(payload.length).bytes(payload).take();
}

/** PACKAGED: the command with len 4 (be32 N), then the N bytes of the nested stream. */
export function encodePackaged(nested: Uint8Array): Uint8Array {
  return new ByteWriter(9 + nested.length)
    .bytes(encodeCommand({ name: 'PACKAGED', length: nested.length }))
    .bytes(nested)
    .take();
}

/** migration.c's enum mig_rp_message_type. */
const RP_TYPES = { SHUT: 1, PONG: 2, REQ_PAGES_ID: 3, REQ_PAGES: 4, RECV_BITMAP: 5, RESUME_ACK: 6 } as const;

/** One return-path message as migration.c writes it; RECV_BITMAP adds its out-of-frame size, bitmap and ending mark. */
export function encodeReturnPath(ev: ReturnPathEvent, bitmap?: Uint8Array): Uint8Array {
  const p = new ByteWriter(64);
  switch (ev.type) {
    case 'SHUT':
    case 'PONG':
    case 'RESUME_ACK':
      p.be32(ev.value);
      break;
    case 'REQ_PAGES':
      p.be64(ev.start).be32(ev.length);
      break;
    case 'REQ_PAGES_ID':
      p.be64(ev.start).be32(ev.length).str8(ev.block);
      break;
    case 'RECV_BITMAP':
      p.str8(ev.block);
      break;
  }
  const payload = p.take();
  const w = new ByteWriter(4 + payload.length).be16(RP_TYPES[ev.type]).be16(payload.length).bytes(payload);
  if (ev.type === 'RECV_BITMAP') {
    const map = bitmap ?? new Uint8Array(ev.bitmapBytes);
    w.be64(map.length).bytes(map).be32(0x01234567).be32(0x89abcdef);
  }
  return w.take();
}
