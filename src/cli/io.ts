// What the CLI's subcommands (`devices`, `tokens`, `alarms`) share: where they write, parsing their command line, usage
// errors, how an error ends a command, tables and times.
import { resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { BackhaulError, errorText, isBackhaulError } from '../core/errors.js';

export interface Out {
  out(s: string): void;
  err(s: string): void;
}

export const stdio: Out = {
  out: (s) => process.stdout.write(`${s}\n`),
  err: (s) => process.stderr.write(`${s}\n`),
};

/** A wrong command line: printed as `BH_USAGE …`, exit 2. */
export class UsageError extends BackhaulError {
  constructor(detail: string) {
    super('BH_USAGE', detail);
    this.name = 'UsageError';
  }
}

/** Columns padded to their widest cell; the first row is the header. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd()).join('\n');
}

/** ISO time to the second; `-` for none. */
export function iso(ms: number | undefined): string {
  return ms === undefined ? '-' : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function json(v: unknown): string {
  return JSON.stringify(v, null, 2);
}

type Options = NonNullable<ParseArgsConfig['options']>;
export type Values<O extends Options> = ReturnType<typeof parseArgs<{ args: string[]; options: O; allowPositionals: true; strict: true }>>['values'];

/** True when the first word of the command line is `word` (options may come before it). */
export function isSubcommand(argv: readonly string[], word: string, options: Options): boolean {
  try {
    const { positionals } = parseArgs({ args: [...argv], options, allowPositionals: true, strict: false });
    return positionals[0] === word;
  } catch {
    return false;
  }
}

/**
 * `backhaul WORD CMD ARGS… [options]` parsed: the options, the subcommand and its arguments; or, when the line is
 * answered already (help printed: 0; a usage error or no subcommand: 2), that exit code.
 */
export function subcommandLine<O extends Options>(
  argv: readonly string[],
  options: O,
  help: string,
  io: Out,
): { readonly values: Values<O>; readonly cmd: string; readonly args: string[] } | number {
  let values: Values<O>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true }));
  } catch (e) {
    io.err(`BH_USAGE ${errorText(e)}\n\n${help}`);
    return 2;
  }
  // positionals[0] is WORD itself
  const [, cmd, ...args] = positionals;
  const asked = (values as { help?: unknown }).help === true || cmd === 'help';
  if (asked || cmd === undefined) {
    io.out(help);
    return asked ? 0 : 2;
  }
  return { values, cmd, args };
}

/** The exit code of a subcommand's run: its own, 2 after a usage error, 1 after any other (printed `CODE message`). */
export async function exitCode(io: Out, run: () => number | Promise<number>): Promise<number> {
  try {
    return await run();
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`BH_USAGE ${e.message}`);
      return 2;
    }
    io.err(isBackhaulError(e) ? e.toString() : errorText(e));
    return 1;
  }
}

/** The options every data-folder subcommand takes (`devices`, `tokens`, `alarms`): spread into its own. */
export const DATA_OPTIONS = {
  config: { type: 'string', short: 'c' },
  data: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** The data folder a subcommand works on: `--data DIR`, else that of `-c FILE` (`fromConfig`); a usage error without either. */
export function dataDirArg(values: { readonly data?: string | undefined; readonly config?: string | undefined }, command: string, fromConfig: (file: string) => string): string {
  if (values.data !== undefined) return resolve(values.data);
  if (values.config !== undefined) return fromConfig(values.config);
  throw new UsageError(`${command} needs -c FILE (the config, for its data folder) or --data DIR`);
}
