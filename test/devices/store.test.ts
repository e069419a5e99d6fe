// The SQLite device store: the conformance suite on real files, and what is SQLite's own (WAL, schema version).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { DeviceTypes } from '../../src/devices/device-types.js';
import { generatePassword } from '../../src/devices/credentials.js';
import { loginKeyPath, registryPath, SqliteDeviceStore } from '../../src/devices/store/index.js';
import { tempDir } from '../helpers/context.js';
import { throwsCode } from '../helpers/assert.js';
import { deviceStoreConformance } from './store-conformance.js';

const paths = new WeakMap<object, string>();

deviceStoreConformance('SqliteDeviceStore', {
  make({ types, clock }) {
    const dir = tempDir('backhaul-registry-');
    const path = registryPath(dir.path);
    const store = SqliteDeviceStore.open(path, { types, clock });
    paths.set(store, path);
    return Promise.resolve(store);
  },
  async reopen(old, { types, clock }) {
    const path = paths.get(old)!;
    await old.close();
    return SqliteDeviceStore.open(path, { types, clock });
  },
});

test('SqliteDeviceStore: WAL mode, schema version in user_version, the file in <data>/registry.sqlite', async () => {
  const dir = tempDir();
  const path = registryPath(join(dir.path, 'data'));
  assert.equal(path, join(dir.path, 'data', 'registry.sqlite'));
  const store = SqliteDeviceStore.open(path, { types: new DeviceTypes() });
  await store.close();
  const db = new Database(path, { readonly: true });
  try {
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    assert.equal(db.pragma('user_version', { simple: true }), 5);
  } finally {
    db.close();
  }
});

test('SqliteDeviceStore: a LoRaWAN device\'s network side is kept (setObserved), outlives a reopen, and a version-3 file gains the column', async () => {
  const dir = tempDir();
  const path = registryPath(dir.path);
  const types = new DeviceTypes();
  const store = SqliteDeviceStore.open(path, { types });
  await store.create({ id: '0102030405060708', kind: 'deveui', type: 'lorawan-sensor' });
  await store.close();
  const old = new Database(path);
  old.exec('DROP INDEX devices_cert');
  for (const c of ['lorawan', 'cert_fingerprint', 'cert_at']) old.exec(`ALTER TABLE devices DROP COLUMN ${c}`);
  old.pragma('user_version = 3');
  old.close();

  const again = SqliteDeviceStore.open(path, { types });
  const token = await again.changeToken();
  const state = { ns: 'chirpstack', input: 'ns', applicationId: 'app-1', fCnt: 41, rssi: -97, snr: 7.5, gateways: 2, sf: 9, battery: 88, at: 1_700_000_000_000 };
  assert.equal(await again.setObserved([{ id: '0102030405060708', lorawan: state }, { id: 'ffffffffffffffff', lorawan: state }]), 1);
  // Runtime data: a reading's radio must not make every hub re-read the registry.
  assert.equal(await again.changeToken(), token);
  await again.close();
  const third = SqliteDeviceStore.open(path, { types });
  try {
    assert.deepEqual((await third.get('0102030405060708'))?.lorawan, state);
    assert.equal((await third.get('0102030405060708'))?.learnedSilentMs, undefined, 'other observed fields are left as they were');
  } finally {
    await third.close();
  }
});

test('SqliteDeviceStore: a version-1 registry (before claim windows) is migrated in place and keeps its devices and logins', async () => {
  const dir = tempDir();
  const path = registryPath(dir.path);
  const types = new DeviceTypes();
  const store = SqliteDeviceStore.open(path, { types });
  await store.create({ id: '0d49', kind: 'opentrv', type: 'opentrv-valve', location: { building: 'u4', room: '302' } });
  await store.setCredentials('0d49', { username: '0d49', hash: '$scrypt$old', passwordIssued: true });
  await store.create({ id: 'aa:bb:cc:dd:ee:01', type: 'shutter', location: { building: 'u4', room: '301' } });
  await store.close();
  // Make it the file an earlier Backhaul wrote: no claim columns, version 1.
  const old = new Database(path);
  old.exec('DROP INDEX devices_cert');
  for (const c of ['claim_until', 'claim_code_hash', 'claimed_at', 'claimed_by', 'learned_silent_ms', 'mode', 'lorawan', 'cert_fingerprint', 'cert_at']) old.exec(`ALTER TABLE devices DROP COLUMN ${c}`);
  old.pragma('user_version = 1');
  old.close();

  const again = SqliteDeviceStore.open(path, { types });
  try {
    assert.equal((await again.get('0d49'))?.credentials?.hash, '$scrypt$old');
    assert.equal((await again.get('0d49'))?.claim, undefined);
    assert.deepEqual(await again.openClaimWindows('unclaimed', Date.now() + 60_000), ['aa:bb:cc:dd:ee:01']);
    assert.equal(await again.claimCredentials('aa:bb:cc:dd:ee:01', { username: 'aa:bb:cc:dd:ee:01', hash: '$scrypt$new' }, '127.0.0.1'), true);
  } finally {
    await again.close();
  }
  const db = new Database(path, { readonly: true });
  try {
    assert.equal(db.pragma('user_version', { simple: true }), 5);
  } finally {
    db.close();
  }
});

test('SqliteDeviceStore: a registry from a newer Backhaul, or a file that is not SQLite, is refused with BH_REGISTRY_OPEN', () => {
  const dir = tempDir();
  const newer = join(dir.path, 'newer.sqlite');
  const db = new Database(newer);
  db.pragma('user_version = 99');
  db.close();
  const e = throwsCode(() => SqliteDeviceStore.open(newer, { types: new DeviceTypes() }), 'BH_REGISTRY_OPEN');
  assert.match(e.message, /schema version 99/);
  const junk = join(dir.path, 'junk.sqlite');
  writeFileSync(junk, 'this is not a database, just some text that is long enough to look like a header..........');
  throwsCode(() => SqliteDeviceStore.open(junk, { types: new DeviceTypes() }), 'BH_REGISTRY_OPEN');
});

test('SqliteDeviceStore: two handles on one file (the CLI while the hub runs) see each other\'s changes', async () => {
  const dir = tempDir();
  const path = registryPath(dir.path);
  const types = new DeviceTypes();
  const a = SqliteDeviceStore.open(path, { types });
  const b = SqliteDeviceStore.open(path, { types });
  try {
    await a.create({ id: '0d49', kind: 'opentrv', type: 'opentrv-valve' });
    assert.equal((await b.get('0d49'))?.type, 'opentrv-valve');
    await b.setEnabled('0d49', false);
    assert.equal((await a.get('0d49'))?.enabled, false);
  } finally {
    await a.close();
    await b.close();
  }
});

test('SqliteDeviceStore: its login key is <data>/registry.key (0600), beside the registry file and not in it, shared by every handle', async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const path = registryPath(dir.path);
  assert.equal(loginKeyPath(path), join(dir.path, 'registry.key'));
  const types = new DeviceTypes();
  const hub = SqliteDeviceStore.open(path, { types });
  const cli = SqliteDeviceStore.open(path, { types });
  try {
    assert.equal(statSync(join(dir.path, 'registry.key')).mode & 0o777, 0o600);
    assert.equal(cli.logins.keyId, hub.logins.keyId);
    const pw = generatePassword();
    await cli.create({ id: '0d49', kind: 'opentrv', type: 'opentrv-valve' });
    await cli.setCredentials('0d49', { username: '0d49', hash: cli.logins.hash(pw), passwordIssued: true });
    const hash = (await hub.get('0d49'))!.credentials!.hash!;
    assert.equal(await hub.logins.verify(pw, hash), true, 'what the CLI stored, the hub verifies');
    const key = readFileSync(join(dir.path, 'registry.key'), 'utf8').trim();
    await hub.close();
    assert.ok(!readFileSync(path).toString('latin1').includes(key), 'the key is not in the registry file');
    // A throw-away registry gets a throw-away key; another registry, another key.
    const other = SqliteDeviceStore.open(':memory:', { types });
    assert.notEqual(other.logins.keyId, cli.logins.keyId);
    assert.equal(await other.logins.verify(pw, hash), false);
    await other.close();
  } finally {
    await hub.close();
    await cli.close();
  }
});

test('SqliteDeviceStore: a damaged login key file is refused with BH_REGISTRY_OPEN, naming it', (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  writeFileSync(join(dir.path, 'registry.key'), 'garbage\n');
  const e = throwsCode(() => SqliteDeviceStore.open(registryPath(dir.path), { types: new DeviceTypes() }), 'BH_REGISTRY_OPEN');
  assert.match(e.message, /registry\.key is damaged/);
});

test('SqliteDeviceStore: changeToken also moves with changes another connection (the CLI in another process) commits', async () => {
  const dir = tempDir();
  const path = registryPath(dir.path);
  const hub = SqliteDeviceStore.open(path, { types: new DeviceTypes() });
  const cli = SqliteDeviceStore.open(path, { types: new DeviceTypes() });
  try {
    await hub.create({ id: '0d49', kind: 'opentrv', type: 'opentrv-valve' });
    const before = await hub.changeToken();
    await cli.setEnabled('0d49', false);
    const after = await hub.changeToken();
    assert.notEqual(after, before);
    assert.equal(await hub.changeToken(), after, 'stays while nothing changes');
  } finally {
    await cli.close();
    await hub.close();
  }
});
