// Device passwords: generated at random, handed out once, stored only as a scrypt hash (node:crypto, no native
// add-on). The hash is a PHC-style string that carries its parameters, so they can be raised later without
// invalidating stored hashes: `$scrypt$ln=14,r=8,p=1$<salt, base64>$<key, base64>`.
//
// Parameters: N = 2^14, r = 8, p = 1 (16 MiB, ~50 ms on a laptop, a few hundred on a Raspberry Pi). The passwords
// are 144 random bits, so the hash guards a stolen registry file, not weak passwords; a slower setting would only
// slow every device login. Hashing runs on libuv's thread pool (async scrypt), never on the event loop.
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

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

/** A scrypt hash of `password` with a random salt, as a self-describing string. */
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

/** True when `stored` is a hash this module can verify against. */
export function isPasswordHash(stored: string): boolean {
  return parseHash(stored) !== undefined;
}

/**
 * Does `password` match the stored hash? Compared in constant time. A malformed or absurd hash never matches (and
 * does not throw: a login path must not crash on a bad row).
 */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parsed = parseHash(stored);
  if (!parsed || password.length === 0 || password.length > MAX_PASSWORD) return false;
  const key = await derive(password, parsed.salt, parsed.params, parsed.key.length);
  return timingSafeEqual(key, parsed.key);
}

/** A new random password: URL-safe base64 of `bytes` random bytes (18 → 24 characters, 144 bits). */
export function generatePassword(bytes = 18): string {
  if (bytes < 15) throw new Error('a device password needs at least 15 random bytes (20 characters)');
  return randomBytes(bytes).toString('base64url');
}
