// Secrets: any string option may be written `{"secret": "NAME"}`. NAME is looked up in the credentials file named by
// the config's `secrets` key, then in the environment as BACKHAUL_SECRET_<NAME> (upper-cased, other characters as _).
// The credentials file must not be readable by group or others, like ssh's private keys.
import { readFileSync, statSync } from 'node:fs';
import { BackhaulError } from '../errors.js';

export const MIN_SECRET_LENGTH = 4;

/**
 * Names that say "credential" (any case): a map's keys matching it hold secrets (the http sink's headers use it as
 * their `secretKeys`), and the schema test insists that options named like it are marked `secret: true`.
 */
export const CREDENTIAL_NAME = '(pass(word|wd)?|secret|token|auth(orization)?|api[-_]?key|(^|[-_])key$|private[-_]?key|cookie|credential)';

export function secretEnvName(name: string): string {
  return `BACKHAUL_SECRET_${name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;
}

/** True when `v` is a `{"secret": "NAME"}` reference. */
export function isSecretRef(v: unknown): v is { secret: string } {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const keys = Object.keys(v);
  return keys.length === 1 && keys[0] === 'secret' && typeof (v as { secret: unknown }).secret === 'string';
}

export class SecretStore {
  private fileValues: Map<string, string> | undefined;
  /** Every secret value handed out, so the logger can scrub them. */
  readonly values = new Set<string>();

  constructor(
    /** Absolute path of the credentials file, if the config names one. */
    private readonly file: string | undefined,
    /** Config path of the `secrets` key, for error messages. */
    private readonly filePath: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  /** Reads and checks the credentials file. Throws BH_SECRET_FILE_MODE or BH_SECRET_FILE. */
  load(): void {
    if (!this.file) return;
    let mode: number;
    try {
      mode = statSync(this.file).mode;
    } catch (e) {
      throw new BackhaulError('BH_SECRET_FILE', `cannot read credentials file ${this.file}: ${(e as Error).message}`, { path: this.filePath });
    }
    if ((mode & 0o077) !== 0) {
      throw new BackhaulError(
        'BH_SECRET_FILE_MODE',
        `credentials file ${this.file} is readable by group or others (mode ${(mode & 0o777).toString(8)}); run: chmod 600 ${this.file}`,
        { path: this.filePath },
      );
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(this.file, 'utf8'));
    } catch (e) {
      // JSON.parse messages can quote the file's text: say where, not what.
      const why = e instanceof SyntaxError ? 'it is not valid JSON' : (e as Error).message;
      throw new BackhaulError('BH_SECRET_FILE', `cannot read credentials file ${this.file}: ${why}`, { path: this.filePath });
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new BackhaulError('BH_SECRET_FILE', `credentials file ${this.file} must hold a JSON object of strings`, { path: this.filePath });
    }
    const m = new Map<string, string>();
    for (const [k, v] of Object.entries(parsed)) {
      if (typeof v !== 'string') {
        throw new BackhaulError('BH_SECRET_FILE', `credentials file ${this.file}: the value of "${k}" must be a string`, { path: this.filePath });
      }
      m.set(k, v);
    }
    this.fileValues = m;
  }

  /** Resolve one reference; `path` is where it sits in the config. */
  resolve(name: string, path: string): string {
    const v = this.fileValues?.get(name) ?? this.env[secretEnvName(name)];
    if (v === undefined) {
      const where = this.file ? `the credentials file ${this.file} or ` : '';
      throw new BackhaulError('BH_SECRET_MISSING', `secret "${name}" is not in ${where}the environment variable ${secretEnvName(name)}`, { path });
    }
    if (v.length < MIN_SECRET_LENGTH) {
      // Too short to scrub from logs without shredding them; a real credential is never this short.
      throw new BackhaulError('BH_SECRET_WEAK', `secret "${name}" is shorter than ${MIN_SECRET_LENGTH} characters`, { path });
    }
    this.values.add(v);
    return v;
  }
}
