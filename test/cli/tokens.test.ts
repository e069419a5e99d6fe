// `backhaul tokens …` as a person runs it: the real program in a child process, on a real token file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SqliteTokenStore, tokensPath, type TokenInfo } from '../../src/api/tokens.js';
import { tempDir } from '../helpers/context.js';
import { runToEnd } from '../helpers/process.js';

function withStore<T>(dataDir: string, fn: (s: SqliteTokenStore) => T): T {
  const s = SqliteTokenStore.open(tokensPath(dataDir));
  try {
    return fn(s);
  } finally {
    s.close();
  }
}

test('create prints a token once that verifies; list shows it without the secret; revoke makes it fail', async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  // the data folder comes from the config file, relative to it
  const cfg = join(dir.path, 'backhaul.jsonc');
  writeFileSync(cfg, '{ "data": "var", // comments allowed\n "sinks": {}, "routes": [] }');
  const data = join(dir.path, 'var');

  const made = await runToEnd(['tokens', 'create', '--role', 'operator', '--name', 'ci bot', '-c', cfg]);
  assert.equal(made.code, 0, made.stderr);
  const token = /^token: (bh_\S+)$/m.exec(made.stdout)?.[1];
  assert.ok(token, made.stdout);
  assert.match(made.stdout, /will not be shown again/);
  assert.ok(existsSync(tokensPath(data)), 'the token file is in the config\'s data folder');
  const info = withStore(data, (s) => s.verify(token));
  assert.equal(info?.name, 'ci bot');
  assert.equal(info?.role, 'operator');
  assert.match(made.stdout, new RegExp(`created token ${info.id} "ci bot" \\(operator\\)`));

  const j = await runToEnd(['--data', data, 'tokens', 'create', '--role', 'viewer', '--json']); // options may come first
  assert.equal(j.code, 0, j.stderr);
  const created = JSON.parse(j.stdout) as { id: string; name: string; role: string; token: string };
  assert.deepEqual(Object.keys(created).sort(), ['id', 'name', 'role', 'token']);
  assert.equal(created.name, `viewer-${created.id}`);
  assert.equal(withStore(data, (s) => s.verify(created.token)?.id), created.id);

  const table = await runToEnd(['tokens', 'list', '--data', data]);
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /^ID\s+NAME\s+ROLE\s+CREATED\s+LAST USED\s+REVOKED\n/);
  assert.match(table.stdout, new RegExp(`\\n${info.id}\\s+ci bot\\s+operator\\s+\\d{4}-\\d\\d-\\d\\dT[\\d:]+Z\\s+[\\d:TZ-]+\\s+-\\n`));
  assert.match(table.stdout, /2 tokens, 2 active\n$/);
  assert.ok(!table.stdout.includes(token) && !table.stdout.includes(created.token), 'list never prints a token');

  const revoked = await runToEnd(['tokens', 'revoke', info.id, '-c', cfg]);
  assert.equal(revoked.code, 0, revoked.stderr);
  assert.match(revoked.stdout, new RegExp(`token ${info.id} "ci bot" revoked`));
  assert.equal(withStore(data, (s) => s.verify(token)), undefined);
  assert.equal(withStore(data, (s) => s.verify(created.token))?.id, created.id, 'the other token still works');

  const again = await runToEnd(['tokens', 'revoke', info.id, '--data', data]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /was already revoked/);

  const listed = await runToEnd(['tokens', 'list', '--data', data, '--json']);
  assert.equal(listed.code, 0, listed.stderr);
  const rows = JSON.parse(listed.stdout) as TokenInfo[];
  assert.deepEqual(rows.map((r) => [r.id, r.name, r.role, r.revokedAt !== undefined]), [
    [info.id, 'ci bot', 'operator', true],
    [created.id, created.name, 'viewer', false],
  ]);
});

test('refusals: bad role and duplicate name exit 1 with their code; usage errors exit 2', async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const data = dir.path;

  const role = await runToEnd(['tokens', 'create', '--role', 'root', '--data', data]);
  assert.equal(role.code, 1);
  assert.match(role.stderr, /^BH_TOKEN_ROLE role: "root" is not a role/);
  assert.equal(role.stdout, '');

  assert.equal((await runToEnd(['tokens', 'create', '--role', 'admin', '--name', 'ops', '--data', data])).code, 0);
  const dup = await runToEnd(['tokens', 'create', '--role', 'viewer', '--name', 'ops', '--data', data]);
  assert.equal(dup.code, 1);
  assert.match(dup.stderr, /^BH_TOKEN_NAME name: /);
  assert.equal(withStore(data, (s) => s.list().length), 1, 'nothing was created by the refusals');

  const unknown = await runToEnd(['tokens', 'revoke', 'deadbeef', '--data', data]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /^BH_TOKEN_NOT_FOUND id: /);

  const noRole = await runToEnd(['tokens', 'create', '--data', data]);
  assert.equal(noRole.code, 2);
  assert.match(noRole.stderr, /^BH_USAGE create needs --role/);
  const noData = await runToEnd(['tokens', 'list']);
  assert.equal(noData.code, 2);
  assert.match(noData.stderr, /^BH_USAGE tokens needs -c FILE/);
  const badOpt = await runToEnd(['tokens', 'list', '--data', data, '--bogus']);
  assert.equal(badOpt.code, 2);
  assert.match(badOpt.stderr, /^BH_USAGE /);
  const badCmd = await runToEnd(['tokens', 'rotate', '--data', data]);
  assert.equal(badCmd.code, 2);
  assert.match(badCmd.stderr, /^BH_USAGE unknown tokens command "rotate"/);
  const help = await runToEnd(['--help']);
  assert.match(help.stdout, /backhaul tokens COMMAND/);
});
