// scrypt hashing: the right password verifies, a wrong one does not, hashes carry their parameters and salt.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generatePassword, hashPassword, isPasswordHash, verifyPassword } from '../../src/devices/credentials.js';

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

test('generated passwords are url-safe, at least 20 characters, and different', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 50; i++) {
    const pw = generatePassword();
    assert.match(pw, /^[A-Za-z0-9_-]{20,}$/);
    seen.add(pw);
  }
  assert.equal(seen.size, 50);
  assert.throws(() => generatePassword(8), /at least 15/);
});
