// What the CLI's subcommands (`devices`, `tokens`) share: where they write, usage errors, tables and times.
import { BackhaulError } from '../core/errors.js';
export interface Out {
  out(s: string): void;
  err(s: string): void;
}

export const stdio: Out = {
  out: (s) => process.stdout.write(`${s}\n`),
  err: (s) => process.stderr.write(`${s}\n`),
};

/** A wrong command line: printed as `BH_USAGE …`, exit 2. */
/** A wrong command line: printed with the command's usage. */
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
