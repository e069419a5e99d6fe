// Password hashing, both stored formats: scrypt for passwords a person chose, the fast keyed format for generated ones;
// the format of a stored entry decides how it is checked; the registry's login key file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { generatePassword, hashPassword, isPasswordHash, LoginHasher, looksGenerated, verifyPassword } from '../../src/devices/credentials.js';
import { throwsCode } from '../helpers/assert.js';
import { tempDir } from '../helpers/context.js';

test('a hashed password verifies; a wrong one, an empty one and a tampered hash do not', async () => {
  const pw = generatePassword();
  const hash = await hashPassword(pw);
  assert.match(hash, /^\$scrypt\$ln=14,r=8,p=1\$[A-Za-z0-9+/]+=*\$[A-Za-z0-9+/]+=*$/);
  assert.ok(!hash.includes(pw));
  assert.equal(isPasswordHash(hash), true);
  assert.equal(await verifyPassword(pw, hash), true);
  assert.equal(await verifyPassword(`${pw}x`, hash), false);
  assert.equal(await verifyPassword(pw.slice(1), hash), false);
  assert.equal(await verifyPassword('', hash), false);
  const parts = hash.split('$');
  const key = Buffer.from(parts[4]!, 'base64');
  key[0] = key[0]! ^ 1;
  assert.equal(await verifyPassword(pw, [...parts.slice(0, 4), key.toString('base64')].join('$')), false);
});

test('the same password hashes differently each time (random salt)', async () => {
  const a = await hashPassword('correct horse battery');
  const b = await hashPassword('correct horse battery');
  assert.notEqual(a, b);
  assert.equal(await verifyPassword('correct horse battery', b), true);
});

test('parameters travel with the hash, and absurd or malformed ones never match', async () => {
  const light = await hashPassword('pw-1234', { ln: 10, r: 8, p: 1 });
  assert.match(light, /^\$scrypt\$ln=10,/);
  assert.equal(await verifyPassword('pw-1234', light), true);
  const salt = Buffer.alloc(16).toString('base64');
  const key = Buffer.alloc(32).toString('base64');
  for (const bad of ['', 'plain', `$scrypt$ln=30,r=8,p=1$${salt}$${key}`, `$scrypt$ln=14,r=999,p=1$${salt}$${key}`, `$argon2id$v=19$${salt}$${key}`, `$scrypt$ln=14,r=8,p=1$$${key}`]) {
    assert.equal(isPasswordHash(bad), false, bad);
    assert.equal(await verifyPassword('pw-1234', bad), false, bad);
  }
});

test('generated passwords are url-safe, at least 128 random bits (22 characters; 24 by default), and different', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 50; i++) {
    const pw = generatePassword();
    assert.match(pw, /^[A-Za-z0-9_-]{24}$/);
    assert.equal(looksGenerated(pw), true);
    seen.add(pw);
  }
  assert.equal(seen.size, 50);
  assert.match(generatePassword(16), /^[A-Za-z0-9_-]{22}$/);
  assert.throws(() => generatePassword(15), /at least 16 random bytes/);
  assert.throws(() => generatePassword(8), /at least 16 random bytes/);
});

test('a generated password is stored in the fast format, named by its key, and verifies; wrong ones and tampered entries do not', async () => {
  const logins = LoginHasher.random();
  const pw = generatePassword();
  const hash = logins.hash(pw);
  assert.match(hash, /^\$hmac-sha256\$k=[0-9a-f]{12}\$[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=$/);
  assert.equal(logins.keyOf(hash), logins.keyId);
  assert.ok(!hash.includes(pw));
  assert.notEqual(logins.hash(pw), hash, 'a random salt each time');
  assert.equal(await logins.verify(pw, hash), true);
  assert.deepEqual(await logins.check(pw, hash, { migrate: true }), { ok: true }, 'already in the fast format: nothing to migrate');
  for (const wrong of [`${pw}x`, pw.slice(1), '', pw.toUpperCase(), generatePassword()]) assert.equal(await logins.verify(wrong, hash), false, wrong);
  const parts = hash.split('$');
  const mac = Buffer.from(parts[4]!, 'base64');
  mac[31] = mac[31]! ^ 1;
  assert.equal(await logins.verify(pw, [...parts.slice(0, 4), mac.toString('base64')].join('$')), false);
  for (const bad of [hash.slice(0, -2), `${hash}=`, hash.replace('$k=', '$k=0'), hash.replace('hmac-sha256', 'hmac-sha1'), ` ${hash}`]) {
    assert.equal(await logins.verify(pw, bad), false, bad);
  }
  // Only the key that made it: another registry's key (or a lost and remade key file) never matches.
  const other = LoginHasher.random();
  assert.notEqual(other.keyId, logins.keyId);
  assert.equal(await other.verify(pw, hash), false);
  assert.equal(await other.verify(pw, hash.replace(`k=${logins.keyId}`, `k=${other.keyId}`)), false);
  // The scrypt-only verifier does not know the fast format.
  assert.equal(await verifyPassword(pw, hash), false);
  assert.equal(isPasswordHash(hash), false);
});

test('fast hashes only for generated passwords: a person\'s password is refused (it keeps scrypt)', () => {
  const logins = LoginHasher.random();
  for (const p of ['correct horse battery', 'shutter-301-password', 'short', '', 'x'.repeat(21), `${'a'.repeat(30)}!`]) {
    assert.equal(looksGenerated(p), false, p);
    assert.throws(() => logins.hash(p), /only generated passwords/, p);
  }
});

test('the format of a stored entry decides how it is checked: neither path verifies the other\'s entries (no downgrade)', async () => {
  const logins = LoginHasher.random();
  const pw = generatePassword();
  // A scrypt entry carrying what would pass the fast check (the HMAC of this password under this key, same salt
  // and length): refused, because a scrypt entry is only ever checked by scrypt.
  const fast = logins.hash(pw).split('$');
  const disguised = `$scrypt$ln=14,r=8,p=1$${fast[3]}$${fast[4]}`;
  assert.equal(isPasswordHash(disguised), true, 'a well-formed scrypt entry');
  assert.deepEqual(await logins.check(pw, disguised, { migrate: true }), { ok: false });
  // And the other way: a real scrypt hash of the password relabelled as the fast format never matches.
  const scrypted = (await hashPassword(pw)).split('$');
  const relabelled = `$hmac-sha256$k=${logins.keyId}$${scrypted[3]}$${scrypted[4]}`;
  assert.equal(logins.keyOf(relabelled), logins.keyId, 'a well-formed fast entry');
  assert.deepEqual(await logins.check(pw, relabelled, { migrate: true }), { ok: false });
  // Unknown formats never match.
  for (const bad of ['', pw, `$argon2id$v=19$m=65536,t=3,p=4$${scrypted[3]}$${scrypted[4]}`]) assert.deepEqual(await logins.check(pw, bad), { ok: false }, bad);
});

test('an old scrypt hash of a generated password verifies, and migrating gives its fast replacement; a person\'s password never gets one', async () => {
  const logins = LoginHasher.random();
  const pw = generatePassword();
  const old = await hashPassword(pw);
  assert.deepEqual(await logins.check(pw, old), { ok: true }, 'without migrate: verified, nothing to store');
  const c = await logins.check(pw, old, { migrate: true });
  assert.equal(c.ok, true);
  assert.ok(c.ok && c.rehash !== undefined);
  assert.equal(logins.keyOf(c.rehash), logins.keyId);
  assert.equal(await logins.verify(pw, c.rehash), true);
  assert.equal(await logins.verify(`${pw}x`, c.rehash), false);
  assert.deepEqual(await logins.check(`${pw}x`, old, { migrate: true }), { ok: false });
  const person = 'correct horse battery';
  assert.deepEqual(await logins.check(person, await hashPassword(person), { migrate: true }), { ok: true });
});

test('property: a fast hash verifies exactly its own password', async () => {
  const logins = LoginHasher.random();
  const generated = fc.uint8Array({ minLength: 16, maxLength: 64 }).map((b) => Buffer.from(b).toString('base64url'));
  await fc.assert(
    fc.asyncProperty(generated, fc.string({ maxLength: 80 }), async (pw, other) => {
      const hash = logins.hash(pw);
      assert.equal(await logins.verify(pw, hash), true);
      assert.equal(await logins.verify(other, hash), other === pw);
      assert.equal(await logins.verify(`${pw}${other}`, hash), other === '');
    }),
    { numRuns: 300 },
  );
});

test('the login key file: made 0600 when missing, the same key on every load, refused when damaged', async (t) => {
  const d = tempDir();
  t.after(() => d.cleanup());
  const path = join(d.path, 'registry.key');
  const a = LoginHasher.load(path);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.match(readFileSync(path, 'utf8'), /^[A-Za-z0-9_-]{43}\n$/);
  const b = LoginHasher.load(path);
  assert.equal(b.keyId, a.keyId);
  const pw = generatePassword();
  assert.equal(await b.verify(pw, a.hash(pw)), true, 'a hash made by one process verifies in another');
  assert.notEqual(LoginHasher.load(join(d.path, 'elsewhere.key')).keyId, a.keyId, 'another file, another key');
  for (const junk of ['', 'not a key\n', `${Buffer.alloc(16).toString('base64url')}\n`]) {
    writeFileSync(path, junk);
    const e = throwsCode(() => LoginHasher.load(path), 'BH_REGISTRY_OPEN');
    assert.match(e.message, /registry\.key is damaged/);
  }
  throwsCode(() => LoginHasher.load(join(d.path, 'no-such-folder', 'registry.key')), 'BH_REGISTRY_OPEN');
});
