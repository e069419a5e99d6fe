// API tokens in PostgreSQL (`"store": {"type": "postgres"}`), shared by two real hubs and the CLI: only the first hub
// makes a first admin, and it works on both; a token made by `backhaul tokens create -c FILE` works on both APIs;
// revoked through one hub's REST API, it is refused by the other within a second (the notices: the periodic re-read
// is 30 s away); revoked by `backhaul tokens revoke -c FILE`, likewise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Hub } from '../../src/runtime/hub.js';
import { teardown } from '../helpers/context.js';
import { pgCluster } from '../helpers/pg-cluster.js';
import { freshSchema, postgresSkip } from '../helpers/postgres.js';
import { runToEnd } from '../helpers/process.js';

const skip = await postgresSkip();

test('tokens in PostgreSQL: one set for two hubs and the CLI; a revocation through one is refused by the other within a second', { skip, timeout: 90_000 }, async (t) => {
  const later = teardown(t);
  const schema = freshSchema('bh_tok');
  later(() => schema.drop());
  const hubs = (
    await pgCluster(later, schema.name, 2, () => ({ api: { host: '127.0.0.1', port: 0 }, sinks: { out: { type: 'file', path: 'out.jsonl' } }, routes: [{ to: ['out'] }] }))
  ).map((n) => ({ hub: n.hub, file: n.file, get first() { return n.admin; } }));
  const [north, south] = hubs as [(typeof hubs)[0], (typeof hubs)[0]];
  assert.ok(north.first, 'the first hub made the first admin');
  assert.equal(south.first, undefined, 'the second did not: the tokens are shared');
  const admin = north.first;
  const get = (h: Hub, token: string) => fetch(`${h.apiUrl() ?? ''}/api/v1/tokens`, { headers: { authorization: `Bearer ${token}` } });
  const refusedWithin1s = async (h: Hub, token: string): Promise<boolean> => {
    for (const end = Date.now() + 1000; Date.now() <= end; await new Promise((r) => setTimeout(r, 20))) {
      if ((await get(h, token)).status === 401) return true;
    }
    return false;
  };
  assert.equal((await get(south.hub, admin)).status, 200, 'the first admin works on the second hub');

  const made = await runToEnd(['tokens', 'create', '--role', 'admin', '--name', 'ops', '-c', south.file, '--json']);
  assert.equal(made.code, 0, made.stderr);
  const ops = JSON.parse(made.stdout) as { id: string; token: string };
  for (const h of [north, south]) {
    let status = 0;
    for (const end = Date.now() + 1000; Date.now() <= end && status !== 200; await new Promise((r) => setTimeout(r, 20))) status = (await get(h.hub, ops.token)).status;
    assert.equal(status, 200, 'the CLI-made token works on both hubs');
  }
  const listed = await (await get(north.hub, admin)).json() as Array<{ id: string }>;
  assert.deepEqual(listed.map((x) => x.id).sort(), [ops.id, admin.slice(3, 11)].sort());

  // Revoked through north's API: south refuses it within a second.
  const del = await fetch(`${north.hub.apiUrl() ?? ''}/api/v1/tokens/${ops.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${admin}` } });
  assert.equal(del.status, 204);
  assert.equal(await refusedWithin1s(south.hub, ops.token), true, 'south refuses the token revoked through north');

  // Revoked by the CLI: both refuse it within a second.
  const viewer = await (await fetch(`${south.hub.apiUrl() ?? ''}/api/v1/tokens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'viewer', role: 'viewer' }),
  })).json() as { id: string; token: string };
  const revoked = await runToEnd(['tokens', 'revoke', viewer.id, '-c', north.file]);
  assert.equal(revoked.code, 0, revoked.stderr);
  for (const h of [north, south]) assert.equal(await refusedWithin1s(h.hub, viewer.token), true, 'refused after the CLI revoked it');
});
