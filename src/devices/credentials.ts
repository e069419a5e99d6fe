// Device passwords, in two stored formats; the stored string says which, and verification dispatches on it.
//
// Passwords a person chose (devices declared in the config file, claim codes) are kept as a scrypt hash, a PHC-style
// string that carries its parameters, so they can be raised later without invalidating stored hashes:
// `$scrypt$ln=14,r=8,p=1$<salt, base64>$<key, base64>`. N = 2^14, r = 8, p = 1 (16 MiB, ~40 ms of CPU on a laptop, a
// few hundred on a Raspberry Pi). It runs on libuv's thread pool (async scrypt), never on the event loop.
//
// Passwords Backhaul generates (`generatePassword`: ≥ 128, by default 144 random bits; `backhaul devices add`,
// `reset-credentials`, the bootstrap call) are kept in a fast keyed format, made and checked in microseconds, so
// 10,000 devices can log in again within seconds of a restart: `$hmac-sha256$k=<key id>$<salt, base64>$<mac, base64>`,
// mac = HMAC-SHA256(key, salt ‖ password) with a 256-bit key of the registry's own (LoginHasher; the SQLite registry
// keeps it in `<data>/registry.key`, mode 0600, beside but outside `registry.sqlite`). Why no slow KDF: a KDF only
// slows the guessing of passwords that can be guessed; a 128-bit random secret cannot be (2^127 tries on average, at
// any speed), as for the API tokens (tokens.ts). Why a key rather than plain salted SHA-256, although the entropy
// alone already makes a stolen hash useless: a copy of the registry file (a backup, a `.backup` copy, a support
// bundle) without the key gives nothing to test guesses against at all, which still holds if a generator ever turned
// out weaker than meant (the pepper of NIST SP 800-63B 5.1.1.2); the price is one more file, which lives and is backed
// up with the data folder. The key id tells which key made a hash, so a replaced or lost key file shows as such in
// the log rather than as mere wrong passwords (and a key can be rotated later).
//
// The format decides, in both directions: a scrypt string is only ever checked with scrypt, a fast one only with the
// HMAC, so no stored entry can be verified by the other path (no downgrade). A wrong password against a fast entry
// costs what a right one does: microseconds. A registry device's scrypt hash (from before the fast format) still
// verifies, and `check(…, { migrate: true })` returns its fast replacement, which the gate stores (migrate on login).
import { createHash, createHmac, randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { closeSync, fsyncSync, linkSync, openSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { BackhaulError } from '../core/errors.js';

const KEY_LEN = 32;
const SALT_LEN = 16;
const DEFAULT = { ln: 14, r: 8, p: 1 } as const;
/** Refuse to verify against parameters that would take seconds or gigabytes (a tampered hash as a DoS). */
const LIMITS = { ln: 20, r: 32, p: 16 } as const;
/** Longer passwords are refused before hashing (nothing legitimate is that long). */
const MAX_PASSWORD = 1024;

export interface ScryptParams {
  /** log2 of the cost N. */
  readonly ln: number;
  readonly r: number;
  readonly p: number;
}

function derive(password: string, salt: Buffer, params: ScryptParams, keyLen: number): Promise<Buffer> {
  const N = 2 ** params.ln;
  const opts: ScryptOptions = { N, r: params.r, p: params.p, maxmem: 128 * N * params.r * params.p + 1024 * 1024 };
  return new Promise((resolve, reject) => {
    scrypt(password, salt, keyLen, opts, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** A scrypt hash of `password` with a random salt, as a self-describing string: for passwords a person chose. */
export async function hashPassword(password: string, params: ScryptParams = DEFAULT): Promise<string> {
  if (password.length === 0 || password.length > MAX_PASSWORD) throw new Error(`a password must be 1 to ${MAX_PASSWORD} characters`);
  const salt = randomBytes(SALT_LEN);
  const key = await derive(password, salt, params, KEY_LEN);
  return `$scrypt$ln=${params.ln},r=${params.r},p=${params.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

interface Parsed {
  readonly params: ScryptParams;
  readonly salt: Buffer;
  readonly key: Buffer;
}

function parseHash(stored: string): Parsed | undefined {
  const m = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,3}),p=(\d{1,3})\$([A-Za-z0-9+/]+=*)\$([A-Za-z0-9+/]+=*)$/.exec(stored);
  if (!m) return undefined;
  const params = { ln: Number(m[1]), r: Number(m[2]), p: Number(m[3]) };
  if (params.ln < 1 || params.ln > LIMITS.ln || params.r < 1 || params.r > LIMITS.r || params.p < 1 || params.p > LIMITS.p) return undefined;
  const salt = Buffer.from(m[4]!, 'base64');
  const key = Buffer.from(m[5]!, 'base64');
  if (salt.length < 8 || key.length < 16 || key.length > 64) return undefined;
  return { params, salt, key };
}

/** True when `stored` is a scrypt hash verifyPassword can check. */
export function isPasswordHash(stored: string): boolean {
  return parseHash(stored) !== undefined;
}

/**
 * Does `password` match the stored scrypt hash? Compared in constant time. Only scrypt: a device login is checked with
 * LoginHasher.check, which also knows the fast format. A malformed or absurd hash never matches (and
 * does not throw: a login path must not crash on a bad row).
 */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parsed = parseHash(stored);
  if (!parsed || password.length === 0 || password.length > MAX_PASSWORD) return false;
  const key = await derive(password, parsed.salt, parsed.params, parsed.key.length);
  return timingSafeEqual(key, parsed.key);
}

/** A new random password: URL-safe base64 of `bytes` random bytes (18 → 24 characters, 144 bits; at least 16, 128 bits). */
export function generatePassword(bytes = 18): string {
  if (!Number.isInteger(bytes) || bytes < 16) throw new Error('a device password needs at least 16 random bytes (128 bits, 22 characters)');
  return randomBytes(bytes).toString('base64url');
}

/**
 * Whether `password` has the shape of one generatePassword makes: at least 22 URL-safe base64 characters (16 bytes).
 * Only such passwords are given the fast format: one that cannot be ours (shorter, or other characters) is a person's
 * and keeps scrypt, whatever else says otherwise.
 */
export function looksGenerated(password: string): boolean {
  return password.length <= MAX_PASSWORD && /^[A-Za-z0-9_-]{22,}$/.test(password);
}

/** True for a scrypt hash (a person's password, or a generated one stored before the fast format). */
export function isScryptHash(stored: string): boolean {
  return stored.startsWith('$scrypt$');
}

const FAST_PREFIX = '$hmac-sha256$';
const FAST = /^\$hmac-sha256\$k=([0-9a-f]{12})\$([A-Za-z0-9+/]{22}==)\$([A-Za-z0-9+/]{43}=)$/;
const KEY_BYTES = 32;

/** What a login check found: no match, or a match and (when asked to migrate) the hash that should replace the stored one. */
export type LoginCheck = { readonly ok: false } | { readonly ok: true; readonly rehash?: string };

/**
 * The registry's own key, for the fast format of generated passwords, and the one place that verifies a stored
 * password of either format. Made by `random()` (a throw-away registry), `fromKey()`, or `load()` (a key file).
 */
export class LoginHasher {
  private constructor(
    private readonly key: Buffer,
    /** Names the key in every hash it made: a hash made with another key never matches, and says so. */
    readonly keyId: string,
  ) {}

  static fromKey(key: Buffer): LoginHasher {
    if (key.length !== KEY_BYTES) throw new Error(`a login key is ${KEY_BYTES} bytes`);
    const id = createHash('sha256').update('backhaul login key id\0').update(key).digest('hex').slice(0, 12);
    return new LoginHasher(Buffer.from(key), id);
  }

  static random(): LoginHasher {
    return LoginHasher.fromKey(randomBytes(KEY_BYTES));
  }

  /**
   * The key in `path` (URL-safe base64 of 32 bytes, one line), made (mode 0600) when there is none. Several processes
   * may open one registry at once (the hub, the CLI): the file appears whole or not at all (written aside, then
   * hard-linked into place, which fails when another process was first; its key is then read), and it is on disk
   * before any hash made with it can be. BH_REGISTRY_OPEN when it cannot be read, made, or is damaged.
   */
  static load(path: string): LoginHasher {
    const fail = (why: string, cause?: unknown): never => {
      throw new BackhaulError('BH_REGISTRY_OPEN', `the registry's login key ${path} ${why}`, cause === undefined ? {} : { cause });
    };
    const read = (): LoginHasher | undefined => {
      let text: string;
      try {
        text = readFileSync(path, 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        return fail(`cannot be read: ${(e as Error).message}`, e);
      }
      const t = text.trim();
      const key = Buffer.from(t, 'base64url');
      if (key.length !== KEY_BYTES || key.toString('base64url') !== t) {
        return fail('is damaged (not 32 bytes in URL-safe base64): restore it from the backup of the data folder, or move it away to make a new one (every device given its password since must then get a new one)');
      }
      return LoginHasher.fromKey(key);
    };
    const found = read();
    if (found) return found;
    const key = randomBytes(KEY_BYTES);
    const aside = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      writeFileSync(aside, `${key.toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
      syncPath(aside);
      try {
        linkSync(aside, path);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        return read() ?? fail('vanished while it was being made');
      }
    } catch (e) {
      if (e instanceof BackhaulError) throw e;
      return fail(`cannot be made: ${(e as Error).message}`, e);
    } finally {
      try {
        unlinkSync(aside);
      } catch {
        /* never made */
      }
    }
    try {
      syncPath(dirname(path)); // the new name too; some file systems cannot sync a folder, and then the file still is
    } catch {
      /* best effort */
    }
    return LoginHasher.fromKey(key);
  }

  /** The fast hash of a generated password (microseconds, no I/O). Throws for one that does not look generated. */
  hash(password: string): string {
    if (!looksGenerated(password)) throw new Error('only generated passwords (22 or more URL-safe characters) get the fast hash; hash others with hashPassword');
    const salt = randomBytes(SALT_LEN);
    return `${FAST_PREFIX}k=${this.keyId}$${salt.toString('base64')}$${this.mac(salt, password).toString('base64')}`;
  }

  /** The id of the key a fast hash was made with; undefined for anything else. */
  keyOf(stored: string): string | undefined {
    return FAST.exec(stored)?.[1];
  }

  /** Does `password` match `stored`, of either format? Never throws; a malformed entry never matches. */
  async verify(password: string, stored: string): Promise<boolean> {
    return (await this.check(password, stored)).ok;
  }

  /**
   * `verify`, and with `migrate` (the caller knows the password is a generated one: a registry device's) the fast hash
   * that should replace a matching scrypt entry. A fast entry is checked here, synchronously, and only against this
   * key; a scrypt entry only by scrypt, on the thread pool.
   */
  async check(password: string, stored: string, o: { readonly migrate?: boolean } = {}): Promise<LoginCheck> {
    if (password.length === 0 || password.length > MAX_PASSWORD) return { ok: false };
    if (stored.startsWith(FAST_PREFIX)) return { ok: this.verifyFast(password, stored) };
    if (!isScryptHash(stored) || !(await verifyPassword(password, stored))) return { ok: false };
    return o.migrate === true && looksGenerated(password) ? { ok: true, rehash: this.hash(password) } : { ok: true };
  }

  private verifyFast(password: string, stored: string): boolean {
    const m = FAST.exec(stored);
    if (!m || m[1] !== this.keyId) return false;
    const salt = Buffer.from(m[2]!, 'base64');
    return timingSafeEqual(this.mac(salt, password), Buffer.from(m[3]!, 'base64'));
  }

  private mac(salt: Buffer, password: string): Buffer {
    return createHmac('sha256', this.key).update(salt).update(password, 'utf8').digest();
  }
}

/** fsync a file or folder, so what was written (or linked) survives a power cut. */
function syncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
