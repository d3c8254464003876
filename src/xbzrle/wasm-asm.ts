/**
 * Just enough of the WebAssembly binary format (core spec §5, SIMD proposal)
 * to write one small kernel by hand in readable form, without a toolchain.
 * Instructions are methods named after their text-format mnemonics; locals and
 * branch targets are referred to by name.
 */

/** Value type codes. */
export const I32 = 0x7f;
export const I64 = 0x7e;

export interface FunctionSpec {
  /** Parameter names, all i32. */
  params: readonly string[];
  locals: readonly { name: string; type: number }[];
  /** Exported under this name; the module's memory is exported as "memory". */
  exportName: string;
}

/** Unsigned LEB128, as every index and size in the binary format is written. */
function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

/** Signed LEB128, for i32.const. */
function sleb(n: number): number[] {
  const out: number[] = [];
  n |= 0;
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

const BLOCK_VOID = 0x40;
const SIMD = 0xfd;

export class FunctionBuilder {
  private readonly code: number[] = [];
  private readonly localIndex = new Map<string, number>();
  /** Open blocks, innermost last; `null` for an unnamed `if`. */
  private readonly labels: (string | null)[] = [];

  constructor(readonly spec: FunctionSpec) {
    [...spec.params, ...spec.locals.map((l) => l.name)].forEach((name, i) => this.localIndex.set(name, i));
  }

  private emit(...bytes: number[]): this {
    for (const b of bytes) this.code.push(b);
    return this;
  }

  private local(name: string): number[] {
    const i = this.localIndex.get(name);
    if (i === undefined) throw new Error(`wasm-asm: unknown local ${name}`);
    return uleb(i);
  }

  private depth(label: string): number[] {
    const i = this.labels.lastIndexOf(label);
    if (i < 0) throw new Error(`wasm-asm: no enclosing block ${label}`);
    return uleb(this.labels.length - 1 - i);
  }

  // Variables and constants
  get(name: string): this {
    return this.emit(0x20, ...this.local(name));
  }
  set(name: string): this {
    return this.emit(0x21, ...this.local(name));
  }
  tee(name: string): this {
    return this.emit(0x22, ...this.local(name));
  }
  i32(value: number): this {
    return this.emit(0x41, ...sleb(value));
  }
  i64(value: number): this {
    return this.emit(0x42, ...sleb(value));
  }

  // Control
  block(label: string): this {
    this.labels.push(label);
    return this.emit(0x02, BLOCK_VOID);
  }
  loop(label: string): this {
    this.labels.push(label);
    return this.emit(0x03, BLOCK_VOID);
  }
  if(): this {
    this.labels.push(null);
    return this.emit(0x04, BLOCK_VOID);
  }
  else(): this {
    return this.emit(0x05);
  }
  end(): this {
    if (this.labels.pop() === undefined) throw new Error('wasm-asm: end without block');
    return this.emit(0x0b);
  }
  br(label: string): this {
    return this.emit(0x0c, ...this.depth(label));
  }
  brIf(label: string): this {
    return this.emit(0x0d, ...this.depth(label));
  }
  return(): this {
    return this.emit(0x0f);
  }

  // i32 arithmetic and unsigned comparisons
  i32Add(): this {
    return this.emit(0x6a);
  }
  i32Sub(): this {
    return this.emit(0x6b);
  }
  i32And(): this {
    return this.emit(0x71);
  }
  i32Or(): this {
    return this.emit(0x72);
  }
  i32Shl(): this {
    return this.emit(0x74);
  }
  i32ShrU(): this {
    return this.emit(0x76);
  }
  i32Eqz(): this {
    return this.emit(0x45);
  }
  i32LtU(): this {
    return this.emit(0x49);
  }
  i32GtU(): this {
    return this.emit(0x4b);
  }
  i32GeU(): this {
    return this.emit(0x4f);
  }

  // i64, for 64-byte masks
  i64ExtendI32U(): this {
    return this.emit(0xad);
  }
  i32WrapI64(): this {
    return this.emit(0xa7);
  }
  i64Shl(): this {
    return this.emit(0x86);
  }
  i64ShrU(): this {
    return this.emit(0x88);
  }
  i64Or(): this {
    return this.emit(0x84);
  }
  i64Xor(): this {
    return this.emit(0x85);
  }
  i64Ctz(): this {
    return this.emit(0x7a);
  }
  i64Eqz(): this {
    return this.emit(0x50);
  }

  // Memory: byte alignment hints, no static offset.
  i32Store8(): this {
    return this.emit(0x3a, 0, 0);
  }
  i32Store16(): this {
    return this.emit(0x3b, 0, 0);
  }
  memoryCopy(): this {
    return this.emit(0xfc, ...uleb(10), 0, 0);
  }
  v128Load(offset = 0): this {
    return this.emit(SIMD, ...uleb(0x00), 0, ...uleb(offset));
  }
  v128Store(): this {
    return this.emit(SIMD, ...uleb(0x0b), 0, 0);
  }

  // SIMD
  i8x16Eq(): this {
    return this.emit(SIMD, ...uleb(0x23));
  }
  i8x16Bitmask(): this {
    return this.emit(SIMD, ...uleb(0x64));
  }
  v128Or(): this {
    return this.emit(SIMD, ...uleb(0x50));
  }
  v128Xor(): this {
    return this.emit(SIMD, ...uleb(0x51));
  }
  v128AnyTrue(): this {
    return this.emit(SIMD, ...uleb(0x53));
  }

  /** The function body with its local declarations, as the code section wants it. */
  body(): number[] {
    if (this.labels.length !== 0) throw new Error(`wasm-asm: unclosed block ${this.labels.at(-1)}`);
    const groups = this.spec.locals.flatMap((l) => [1, l.type]);
    const content = [...uleb(this.spec.locals.length), ...groups, ...this.code, 0x0b];
    return [...uleb(content.length), ...content];
  }
}

function section(id: number, content: number[]): number[] {
  return [id, ...uleb(content.length), ...content];
}

function name(text: string): number[] {
  const bytes = [...new TextEncoder().encode(text)];
  return [...uleb(bytes.length), ...bytes];
}

/** A module with one memory (exported as "memory") and one exported function returning i32. */
export function buildModule(fn: FunctionBuilder, memoryPages: number): Uint8Array<ArrayBuffer> {
  const { params, exportName } = fn.spec;
  const funcType = [0x60, ...uleb(params.length), ...params.map(() => I32), 1, I32];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, [1, ...funcType]),
    ...section(3, [1, 0]),
    ...section(5, [1, 0x00, ...uleb(memoryPages)]),
    ...section(7, [2, ...name(exportName), 0x00, 0, ...name('memory'), 0x02, 0]),
    ...section(10, [1, ...fn.body()]),
  ]);
}
