// `backhaul devices …` as a person runs it: the real program in a child process, on a real registry file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { verifyPassword } from '../../src/devices/credentials.js';
import { DeviceTypes } from '../../src/devices/device-types.js';
import { registryPath, SqliteDeviceStore } from '../../src/devices/store/index.js';
import { tempDir } from '../helpers/context.js';
import { runToEnd } from '../helpers/process.js';

async function stored(dataDir: string, id: string) {
  const store = SqliteDeviceStore.open(registryPath(dataDir), { types: new DeviceTypes() });
  try {
    return await store.get(id);
  } finally {
    await store.close();
  }
}

/** Does the password match the stored hash, checked with the registry's own login key (the CLI made it)? */
async function verifies(dataDir: string, password: string, hash: string): Promise<boolean> {
  const store = SqliteDeviceStore.open(registryPath(dataDir), { types: new DeviceTypes() });
  try {
    return await store.logins.verify(password, hash);
  } finally {
    await store.close();
  }
}

test('add prints the password once, list and show never print its hash, reset-credentials invalidates the old one', async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  // the data folder comes from the config file, relative to it
  const cfg = join(dir.path, 'backhaul.jsonc');
  writeFileSync(cfg, '{ "data": "var", // comments allowed\n "sinks": {}, "routes": [] }');
  const data = join(dir.path, 'var');

  const add = await runToEnd(['devices', 'add', 'AA-BB-CC-DD-EE-01', '--type', 'shutter', '--building', 'u4', '--room', '301', '--tags', 'south;lab', '-c', cfg]);
  assert.equal(add.code, 0, add.stderr);
  assert.match(add.stdout, /added aa:bb:cc:dd:ee:01 \(mac, shutter\) at u4\/301, topic u4\/301\/shutter/);
  const pw = /password: (\S+)/.exec(add.stdout)?.[1];
  assert.ok(pw && pw.length >= 20, add.stdout);
  const d = await stored(data, 'aa:bb:cc:dd:ee:01');
  assert.ok(d?.credentials?.hash);
  assert.match(d.credentials.hash, /^\$hmac-sha256\$k=[0-9a-f]{12}\$/); // a generated password: the fast format
  assert.equal(await verifies(data, pw, d.credentials.hash), true);
  assert.equal(await verifyPassword(pw, d.credentials.hash), false, 'not a scrypt hash: the scrypt-only check refuses it');

  const list = await runToEnd(['-c', cfg, 'devices', 'list', '--json']); // options may come before `devices`
  assert.equal(list.code, 0, list.stderr);
  const rows = JSON.parse(list.stdout) as Array<Record<string, unknown>>;
  assert.equal(rows.length, 1);
  assert.equal(rows[0]!['id'], 'aa:bb:cc:dd:ee:01');
  assert.deepEqual(rows[0]!['topics'], { base: 'u4/301/shutter', status: 'u4/301/shutter/device', command: 'u4/301/shutter/command' });
  assert.deepEqual(rows[0]!['credentials'], { username: 'aa:bb:cc:dd:ee:01', hasPassword: true, passwordIssued: true, updatedAt: d.credentials.updatedAt });
  assert.ok(!/\$(scrypt|hmac-sha256)\$/.test(list.stdout) && !list.stdout.includes(pw));

  const table = await runToEnd(['devices', 'list', '--data', data, '--room', '301']);
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /^ID\s+TYPE\s+LOCATION\s+STATE\s+ENABLED\s+LAST SEEN\s+TOPIC\s+TAGS\n/);
  assert.match(table.stdout, /aa:bb:cc:dd:ee:01\s+shutter\s+u4\/301\s+INIT\s+yes\s+never\s+u4\/301\/shutter\s+lab;south\n1 device\n$/);

  const show = await runToEnd(['devices', 'show', 'aabb.ccdd.ee01', '--data', data]); // any spelling finds it
  assert.equal(show.code, 0, show.stderr);
  assert.match(show.stdout, /command u4\/301\/shutter\/command/);
  assert.match(show.stdout, /max silent 1h \(type default\)/);
  assert.match(show.stdout, /device\.add/);
  assert.ok(!/\$(scrypt|hmac-sha256)\$/.test(show.stdout) && !show.stdout.includes(pw));

  const reset = await runToEnd(['devices', 'reset-credentials', 'aa:bb:cc:dd:ee:01', '--data', data]);
  assert.equal(reset.code, 0, reset.stderr);
  const pw2 = /password: (\S+)/.exec(reset.stdout)?.[1];
  assert.ok(pw2 && pw2 !== pw);
  const after = await stored(data, 'aa:bb:cc:dd:ee:01');
  assert.equal(await verifies(data, pw, after!.credentials!.hash!), false);
  assert.equal(await verifies(data, pw2, after!.credentials!.hash!), true);

  const boot = await runToEnd(['devices', 'reset-credentials', 'aa:bb:cc:dd:ee:01', '--bootstrap', '--data', data]);
  assert.equal(boot.code, 0, boot.stderr);
  assert.doesNotMatch(boot.stdout, /password: /);
  const pending = await stored(data, 'aa:bb:cc:dd:ee:01');
  assert.equal(pending?.credentials?.hash, undefined);
  assert.equal(pending?.credentials?.passwordIssued, false);

  const dis = await runToEnd(['devices', 'disable', 'AA:BB:CC:DD:EE:01', '--data', data]);
  assert.equal(dis.stdout, 'aa:bb:cc:dd:ee:01 disabled\n');
  const set = await runToEnd(['devices', 'set', 'aa:bb:cc:dd:ee:01', '--room', '302', '--max-silent', '10m', '--data', data]);
  assert.equal(set.stdout, 'updated aa:bb:cc:dd:ee:01: location, thresholds\n');
  const final = await stored(data, 'aa:bb:cc:dd:ee:01');
  assert.equal(final?.enabled, false);
  assert.equal(final?.thresholds.maxSilentMs, 600_000);

  // block / unblock: BLOCKED with the operator's reason, audited; unblocking what is not BLOCKED is a coded error.
  const blk = await runToEnd(['devices', 'block', 'aa:bb:cc:dd:ee:01', '--reason', 'tampered with', '--data', data]);
  assert.equal(blk.stdout, 'aa:bb:cc:dd:ee:01 BLOCKED: tampered with\n', blk.stderr);
  assert.equal((await stored(data, 'aa:bb:cc:dd:ee:01'))?.blockedReason, 'tampered with');
  const blockedShow = await runToEnd(['devices', 'show', 'aa:bb:cc:dd:ee:01', '--data', data]);
  assert.match(blockedShow.stdout, /state\s+BLOCKED: tampered with/);
  assert.match(blockedShow.stdout, /orders\s+refused: it is disabled/);
  assert.match(blockedShow.stdout, /device\.block/);
  const unb = await runToEnd(['devices', 'unblock', 'aa:bb:cc:dd:ee:01', '--data', data]);
  assert.equal(unb.code, 0, unb.stderr);
  assert.equal((await stored(data, 'aa:bb:cc:dd:ee:01'))?.state, 'INIT');
  const again = await runToEnd(['devices', 'unblock', 'aa:bb:cc:dd:ee:01', '--data', data]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /^BH_DEVICE_STATE id: device aa:bb:cc:dd:ee:01 is INIT, not BLOCKED/);
});

test('import prints a line per row and a summary; twice changes nothing; a bad row exits 1; a dry run writes nothing', async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const data = join(dir.path, 'data');
  const good = join(dir.path, 'good.csv');
  writeFileSync(good, 'id,kind,type,building,room,tags\n0d49,opentrv,opentrv-valve,u4,302,"a;b"\nAA-BB-CC-DD-EE-01,,shutter,u4,301,\n');
  const dry = await runToEnd(['devices', 'import', good, '--dry-run', '--data', data]);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /line 2\s+would create\s+0d49\n/);
  assert.match(dry.stdout, /2 rows: 2 created, 0 updated, 0 unchanged, 0 failed \(dry run: nothing was changed\)\n$/);
  assert.equal(await stored(data, '0d49'), undefined);

  const first = await runToEnd(['devices', 'import', good, '--data', data]);
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /line 2\s+created\s+0d49\nline 3\s+created\s+aa:bb:cc:dd:ee:01\n2 rows: 2 created, 0 updated, 0 unchanged, 0 failed\n$/);
  const second = await runToEnd(['devices', 'import', good, '--data', data, '--json']);
  assert.equal(second.code, 0, second.stderr);
  const report = JSON.parse(second.stdout) as { counts: Record<string, number>; rows: Array<{ line: number; status: string }> };
  assert.deepEqual(report.counts, { created: 0, updated: 0, unchanged: 2, error: 0 });

  const bad = join(dir.path, 'bad.csv');
  writeFileSync(bad, 'id,kind,type,building,room\n0d4a,opentrv,opentrv-valve,u4,303\n0d4b,opentrv,opentrv-valve,u4,+\n0d4c,opentrv,opentrv-valve,u4,304\n');
  const mixed = await runToEnd(['devices', 'import', bad, '--data', data]);
  assert.equal(mixed.code, 1);
  assert.match(mixed.stdout, /line 3\s+error\s+BH_DEVICE_LOCATION room: "\+" must not contain/);
  assert.match(mixed.stdout, /3 rows: 2 created, 0 updated, 0 unchanged, 1 failed\n$/);
  assert.ok(await stored(data, '0d4c'));

  const header = join(dir.path, 'header.csv');
  writeFileSync(header, 'id,romm\n0d49,1\n');
  const h = await runToEnd(['devices', 'import', header, '--data', data]);
  assert.equal(h.code, 1);
  assert.match(h.stderr, /^BH_MANIFEST_FORMAT line 1: unknown column "romm" \(did you mean "room"\?\)/);
});

test('usage errors exit 2, registry errors exit 1, each as CODE path: message on stderr', async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const noData = await runToEnd(['devices', 'list']);
  assert.equal(noData.code, 2);
  assert.match(noData.stderr, /^BH_USAGE devices needs -c FILE/);
  const unknownOpt = await runToEnd(['devices', 'list', '--colour', 'red', '--data', dir.path]);
  assert.equal(unknownOpt.code, 2);
  const missing = await runToEnd(['devices', 'show', 'nope', '--data', dir.path]);
  assert.equal(missing.code, 1);
  assert.equal(missing.stderr, 'BH_DEVICE_NOT_FOUND id: no device "nope" in the registry\n');
  const badCfg = await runToEnd(['devices', 'add', '0d49', '--kind', 'opentrv', '--type', 'opentrv-valve', '--device-config', '{"targetC":99}', '--data', dir.path]);
  assert.equal(badCfg.code, 1);
  assert.match(badCfg.stderr, /^BH_DEVICE_CONFIG config\.targetC: must be <= 30/);
  const again = await runToEnd(['devices', 'add', '0d49', '--kind', 'opentrv', '--type', 'opentrv-valve', '--data', dir.path, '--bootstrap']);
  assert.equal(again.code, 0, again.stderr);
  const dup = await runToEnd(['devices', 'add', 'D49', '--kind', 'opentrv', '--type', 'opentrv-valve', '--data', dir.path]);
  assert.equal(dup.code, 1);
  assert.match(dup.stderr, /^BH_DEVICE_EXISTS id: device "0d49" is already in the registry/);
});

test('claim open/close/code and import --claim-window with a claimCode column: windows, hashed codes, audit, refusals', async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const data = dir.path;
  const run = (...args: string[]) => runToEnd(['devices', ...args, '--data', data]);

  const add = await run('add', 'AA-BB-CC-DD-EE-01', '--type', 'shutter', '--building', 'u4', '--room', '301', '--bootstrap', '--claim-code', 'LBL-0001');
  assert.equal(add.code, 0, add.stderr);
  assert.match(add.stdout, /claim window/);
  let d = await stored(data, 'aa:bb:cc:dd:ee:01');
  assert.ok(d?.claim?.codeHash && (await verifyPassword('LBL-0001', d.claim.codeHash)), 'the code is stored hashed');
  assert.equal(d.claim.until, undefined, 'no window until an operator opens one');

  const before = Date.now();
  const open = await run('claim', 'open', 'aabb.ccdd.ee01', '--for', '10m');
  assert.equal(open.code, 0, open.stderr);
  assert.match(open.stdout, /claim window open until .* \(10m\) for aa:bb:cc:dd:ee:01/);
  d = await stored(data, 'aa:bb:cc:dd:ee:01');
  assert.ok(d?.claim?.until !== undefined && d.claim.until >= before + 600_000 && d.claim.until <= Date.now() + 600_000);
  const show = await run('show', 'aa:bb:cc:dd:ee:01');
  assert.match(show.stdout, /claim\s+window open until .*, claim code set/);
  assert.match(show.stdout, /claim\.open/);
  assert.ok(!show.stdout.includes('LBL-0001') && !show.stdout.includes('$scrypt$'));

  const closed = await run('claim', 'close', '--all');
  assert.equal(closed.code, 0, closed.stderr);
  assert.match(closed.stdout, /claim window closed for aa:bb:cc:dd:ee:01/);
  assert.equal((await stored(data, 'aa:bb:cc:dd:ee:01'))?.claim?.until, undefined);

  // A manifest with claim codes, imported with a window: the devices waiting for a password get it.
  const manifest = join(dir.path, 'devices.csv');
  writeFileSync(manifest, 'id,kind,type,building,room,claimCode\naa:bb:cc:dd:ee:02,mac,shutter,u4,302,LBL-0002\naa:bb:cc:dd:ee:03,mac,shutter,u4,303,\n');
  const imp = await run('import', manifest, '--claim-window', '1h', '--json');
  assert.equal(imp.code, 0, imp.stderr);
  const report = JSON.parse(imp.stdout) as { claimWindow: { devices: string[]; until: number } };
  assert.deepEqual(report.claimWindow.devices, ['aa:bb:cc:dd:ee:02', 'aa:bb:cc:dd:ee:03']);
  assert.ok(await verifyPassword('LBL-0002', (await stored(data, 'aa:bb:cc:dd:ee:02'))!.claim!.codeHash!));
  assert.equal((await stored(data, 'aa:bb:cc:dd:ee:03'))?.claim?.codeHash, undefined);
  const again = await run('import', manifest);
  assert.match(again.stdout, /0 created, 0 updated, 2 unchanged/, 'the same codes again change nothing');

  const all = await run('claim', 'open', '--all-unclaimed', '--json');
  assert.equal(all.code, 0, all.stderr);
  assert.deepEqual((JSON.parse(all.stdout) as { devices: string[] }).devices, ['aa:bb:cc:dd:ee:01', 'aa:bb:cc:dd:ee:02', 'aa:bb:cc:dd:ee:03']);

  const removed = await run('claim', 'code', 'aa:bb:cc:dd:ee:01', '');
  assert.equal(removed.code, 0, removed.stderr);
  assert.equal((await stored(data, 'aa:bb:cc:dd:ee:01'))?.claim?.codeHash, undefined);

  // A device that has its password already cannot be claimed; bad durations and codes are refused with a code.
  const printed = await run('add', 'aa:bb:cc:dd:ee:09', '--type', 'shutter');
  assert.equal(printed.code, 0, printed.stderr);
  const refused = await run('claim', 'open', 'aa:bb:cc:dd:ee:09');
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /^BH_DEVICE_CLAIMED id: /);
  const long = await run('claim', 'open', 'aa:bb:cc:dd:ee:01', '--for', '90d');
  assert.equal(long.code, 1);
  assert.match(long.stderr, /^BH_DEVICE_FIELD for: /);
  const short = await run('claim', 'code', 'aa:bb:cc:dd:ee:01', 'ab');
  assert.match(short.stderr, /^BH_DEVICE_FIELD claimCode: /);
  const usage = await run('claim', 'open');
  assert.equal(usage.code, 2);
});
