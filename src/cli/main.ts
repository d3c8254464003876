#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { MigstreamError } from '../codec/errors.js';
import { runDemo } from './demo.js';
import { runExtract, runInspect, runTranscode } from './commands.js';
import { UsageError } from './io.js';

const USAGE = `usage: migstream <command> [options]

commands:
  inspect STREAM [--json]                      summarise a migration stream
  extract STREAM --out DIR [--disk-size DEV=BYTES]...
                                               write RAMBlocks, disks and devices.json into DIR
  transcode IN OUT                             re-encode as plain QEMU 7.2 records (loadable by QEMU)
  demo                                         transcode, extract and verify a bundled real-QEMU stream

STREAM, IN may be "-" (stdin); OUT may be "-" (stdout).
exit status: 0 ok, 1 I/O or internal error, 2 usage error, 3 malformed or unsupported stream`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'inspect': {
      const { values, positionals } = parse(rest, { json: { type: 'boolean' } });
      return runInspect(one(positionals, 'STREAM'), { json: values.json === true });
    }
    case 'extract': {
      const { values, positionals } = parse(rest, {
        out: { type: 'string' },
        'disk-size': { type: 'string', multiple: true },
      });
      if (typeof values.out !== 'string') throw new UsageError('extract needs --out DIR');
      return runExtract(one(positionals, 'STREAM'), values.out, parseSizes(values['disk-size'] as string[] | undefined));
    }
    case 'transcode': {
      const { positionals } = parse(rest, {});
      if (positionals.length !== 2) throw new UsageError('transcode needs IN and OUT');
      return runTranscode(positionals[0]!, positionals[1]!);
    }
    case 'demo':
      parse(rest, {});
      return runDemo();
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(`${USAGE}\n`);
      return command === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

type Spec = Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>;

function parse(args: string[], options: Spec) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

function one(positionals: string[], name: string): string {
  if (positionals.length !== 1) throw new UsageError(`expected exactly one ${name}`);
  return positionals[0]!;
}

/** DEV=BYTES pairs; BYTES accepts K/M/G (KiB/MiB/GiB) suffixes. */
function parseSizes(pairs: string[] | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of pairs ?? []) {
    const m = /^(.+)=(\d+)([KMG]?)(?:i?B)?$/i.exec(p);
    if (!m) throw new UsageError(`--disk-size expects DEV=BYTES, got "${p}"`);
    const unit = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[3]!.toUpperCase() as '' | 'K' | 'M' | 'G'];
    out[m[1]!] = Number(m[2]) * unit;
  }
  return out;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof UsageError) {
      process.stderr.write(`migstream: ${e.message}\n${USAGE}\n`);
      process.exitCode = 2;
    } else if (e instanceof MigstreamError) {
      process.stderr.write(`migstream: bad stream [${e.code}] ${e.message}\n`);
      process.exitCode = 3;
    } else {
      const err = e as NodeJS.ErrnoException;
      process.stderr.write(`migstream: ${err?.message ?? String(e)}\n`);
      if (process.env.MIGSTREAM_DEBUG) process.stderr.write(`${err?.stack}\n`);
      process.exitCode = 1;
    }
  },
);
