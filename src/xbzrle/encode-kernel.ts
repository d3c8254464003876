import { buildModule, FunctionBuilder, I32, I64 } from './wasm-asm.js';
import { MAX_RUN } from './uleb.js';

/**
 * The XBZRLE encoder as a WebAssembly SIMD function, generated below.
 *
 * encode(old, new, out, slen, dlen) -> encoded length, 0, or -1, with QEMU's
 * generic xbzrle_encode_buffer rules (see encode.ts). `old`, `new` and `out` are
 * offsets in the module's memory. Scans compare 64 bytes at a time and find run
 * ends with i8x16.bitmask + ctz, so a run costs a few instructions however
 * short it is, and short runs cost no mispredicted branches. Long runs are
 * skipped 128 bytes per step. Loads may read up to
 * 127 bytes past `slen`: the caller keeps those bytes equal in both pages
 * (zero), so runs never extend into them.
 * Copies store whole 16-byte vectors, so up to 15 bytes past the encoding in
 * `out` are scratch.
 */
export const KERNEL_PAGE_SLACK = 128;
export const KERNEL_OUT_SLACK = 16;

function kernel(): FunctionBuilder {
  const f = new FunctionBuilder({
    params: ['old', 'new', 'out', 'slen', 'dlen'],
    locals: [...['i', 'd', 'start', 'run', 'k', 'w'].map((name) => ({ name, type: I32 })), { name: 'eq', type: I64 }, { name: 'bits', type: I64 }],
    exportName: 'encode',
  });

  const loadBoth = (delta: number) => f.get('old').get('w').i32Add().v128Load(delta).get('new').get('w').i32Add().v128Load(delta);
  const windowXor = (delta: number) => loadBoth(delta).v128Xor();
  /** Pushes an i64 whose bit j is set when old[w + j] === new[w + j], j < 64. */
  const equalMask64 = () => {
    for (let q = 0; q < 4; q++) {
      loadBoth(16 * q)
        .i8x16Eq()
        .i8x16Bitmask()
        .i64ExtendI32U();
      if (q > 0)
        f.i64(16 * q)
          .i64Shl()
          .i64Or();
    }
    return f;
  };
  /** i += the number of trailing zero bits of the i64 on the stack. */
  const advanceByCtz = () => f.i64Ctz().i32WrapI64().get('i').i32Add().set('i');
  const returnIf = (value: number) => f.if().i32(value).return().end();
  /** if (d + extra > dlen) return -1, where extra is a local or a constant. */
  const overflowIf = (extra: string | number) => {
    f.get('d');
    if (typeof extra === 'number') f.i32(extra);
    else f.get(extra);
    f.i32Add().get('dlen').i32GtU();
    returnIf(-1);
  };
  /** run = i - start; a run a 2-byte ULEB128 cannot hold is an overflow (QEMU asserts). */
  const measureRun = () => {
    f.get('i').get('start').i32Sub().tee('run').i32(MAX_RUN).i32GtU();
    returnIf(-1);
  };
  /** Writes `run` as a 1- or 2-byte ULEB128 at out + d and advances d. */
  const putRunLength = () =>
    f
      .get('run')
      .i32(0x80)
      .i32LtU()
      .if()
      .get('out')
      .get('d')
      .i32Add()
      .get('run')
      .i32Store8()
      .get('d')
      .i32(1)
      .i32Add()
      .set('d')
      .else()
      .get('out')
      .get('d')
      .i32Add()
      .get('run')
      .i32(0x7f)
      .i32And()
      .i32(0x80)
      .i32Or()
      .get('run')
      .i32(7)
      .i32ShrU()
      .i32(8)
      .i32Shl()
      .i32Or()
      .i32Store16()
      .get('d')
      .i32(2)
      .i32Add()
      .set('d')
      .end();

  // The scan keeps one 64-byte window: `eq` has bit j set when old[w + j] === new[w + j].
  // Run ends inside it are found by shifting and ctz, so several short runs share one load.
  const loadWindow = () => equalMask64().set('eq');
  /** Pushes eq (or ~eq) shifted so that bit 0 is byte i. */
  const fromCursor = (invert: boolean) => {
    f.get('eq');
    if (invert) f.i64(-1).i64Xor();
    return f.get('i').get('w').i32Sub().i64ExtendI32U().i64ShrU();
  };

  loadWindow();
  f.block('exit').loop('top');
  f.get('i').get('slen').i32GeU().brIf('exit');
  overflowIf(2);
  f.get('i').set('start');

  // Zero run.
  f.block('zdone').loop('zscan');
  fromCursor(true).tee('bits').i64Eqz().i32Eqz().if().get('bits');
  advanceByCtz().br('zdone').end();
  // The rest of the window matches: skip 128 bytes per step while everything matches.
  f.get('w').i32(64).i32Add().set('w');
  f.block('differs').loop('skip').get('w').get('slen').i32GeU().if().get('d').return().end(); // trailing zero run: not sent
  f.get('w').set('i');
  windowXor(0);
  for (let q = 16; q < 128; q += 16) windowXor(q).v128Or();
  f.v128AnyTrue().brIf('differs').get('w').i32(128).i32Add().set('w').br('skip').end().end();
  loadWindow();
  f.br('zscan');
  f.end().end(); // zscan, zdone

  measureRun();
  putRunLength();
  overflowIf(2);
  f.get('i').set('start');

  // Non-zero run. The bytes past slen are equal, so it stops at slen at the latest.
  f.block('ndone').loop('nscan');
  fromCursor(false).tee('bits').i64Eqz().i32Eqz().if().get('bits');
  advanceByCtz().br('ndone').end();
  // The rest of the window differs: skip ahead while 128 bytes at a time all differ.
  f.get('w').i32(64).i32Add().set('w');
  f.block('someEqual').loop('nskip').get('w').set('i').get('w').get('slen').i32GeU().brIf('ndone');
  loadBoth(0).i8x16Eq();
  for (let q = 16; q < 128; q += 16) loadBoth(q).i8x16Eq().v128Or();
  f.v128AnyTrue().brIf('someEqual').get('w').i32(128).i32Add().set('w').br('nskip').end().end();
  loadWindow();
  f.br('nscan');
  f.end().end(); // nscan, ndone

  measureRun();
  putRunLength();
  overflowIf('run');
  // Copy the run: whole vectors for short runs, memory.copy for long ones.
  f.get('run')
    .i32(64)
    .i32LtU()
    .if()
    .i32(0)
    .set('k')
    .loop('copy')
    .get('out')
    .get('d')
    .i32Add()
    .get('k')
    .i32Add()
    .get('new')
    .get('start')
    .i32Add()
    .get('k')
    .i32Add()
    .v128Load()
    .v128Store()
    .get('k')
    .i32(16)
    .i32Add()
    .tee('k')
    .get('run')
    .i32LtU()
    .brIf('copy')
    .end()
    .else()
    .get('out')
    .get('d')
    .i32Add()
    .get('new')
    .get('start')
    .i32Add()
    .get('run')
    .memoryCopy()
    .end();
  f.get('d').get('run').i32Add().set('d');
  f.br('top');
  f.end().end(); // top, exit
  f.get('d');
  return f;
}

export type KernelEncode = (oldAt: number, newAt: number, outAt: number, slen: number, dlen: number) => number;

export interface Kernel {
  encode: KernelEncode;
  memory: WebAssembly.Memory;
}

/**
 * Compiles the kernel, or returns null where WebAssembly SIMD is unavailable
 * (or compiling is forbidden, as under a strict Content-Security-Policy).
 */
export function instantiateKernel(): Kernel | null {
  if (typeof WebAssembly !== 'object') return null;
  const bytes = buildModule(kernel(), 1);
  try {
    if (!WebAssembly.validate(bytes)) return null;
    const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes));
    const { encode, memory } = instance.exports as { encode: KernelEncode; memory: WebAssembly.Memory };
    return { encode, memory };
  } catch {
    return null;
  }
}
