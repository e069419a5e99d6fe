// mosquitto-go-auth's HTTP backend, answered from the registry: the real program with `api.mosquittoGoAuth`, devices
// registered with the CLI, and requests shaped exactly as that plugin's HTTP backend sends them (backends/http.go,
// `http_params_mode json`, `http_response_mode status`): POST, `Content-Type: application/json`, its User-Agent, and
// the JSON of a Go map (keys in sorted order); 2xx allows, anything else denies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/context.js';
import { runBackhaul, runToEnd } from '../helpers/process.js';
import { freePort } from '../helpers/servers.js';

const A = 'aa:bb:cc:dd:17:01';
const B = 'aa:bb:cc:dd:17:02';

test('mosquitto-go-auth HTTP backend: user, superuser and ACL checks from the registry', async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const port = await freePort();
  const cfg = join(dir.path, 'backhaul.json');
  writeFileSync(
    cfg,
    JSON.stringify({
      data: 'data',
      devices: { refreshMs: 200 },
      api: { host: '127.0.0.1', port, mosquittoGoAuth: true },
      inputs: {},
      sinks: { out: { type: 'file', path: 'out.jsonl' } },
      routes: [{ to: ['out'] }],
    }),
  );
  const add = async (id: string, room: string) => {
    const r = await runToEnd(['devices', 'add', id, '--type', 'shutter', '--building', 'u4', '--room', room, '-c', cfg, '--json']);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { password: string }).password;
  };
  const pwA = await add(A, '701');
  await add(B, '702');
  const app = runBackhaul(['start', '-c', cfg]);
  t.after(() => app.stop());
  await app.waitFor((l) => l.msg === 'backhaul running');

  // As go-auth's httpRequest: json.Marshal of a map[string]interface{} (sorted keys), POST, these two headers.
  const check = async (path: string, body: Record<string, string | number>): Promise<number> => {
    const sorted = Object.fromEntries(Object.keys(body).sort().map((k) => [k, body[k]]));
    const res = await fetch(`http://127.0.0.1:${port}/auth/mosquitto/${path}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'User-Agent': 'mosquitto-go-auth-2.1.0' },
      body: JSON.stringify(sorted),
    });
    await res.arrayBuffer();
    return res.status;
  };
  assert.equal(await check('user', { username: A, password: pwA, clientid: 'valve-1' }), 200);
  assert.equal(await check('user', { username: A, password: `${pwA}x`, clientid: 'valve-1' }), 403, 'wrong password');
  assert.equal(await check('user', { username: 'nobody', password: pwA, clientid: 'x' }), 403, 'unknown login');
  assert.equal(await check('superuser', { username: A }), 403, 'no device is a superuser');

  const acl = (topic: string, acc: number) => check('acl', { username: A, clientid: 'valve-1', topic, acc });
  assert.equal(await acl('u4/701/shutter/data', 2), 200, 'write under its base topic');
  assert.equal(await acl('u4/701/shutter', 2), 200, 'its base topic itself');
  assert.equal(await acl('u4/702/shutter/data', 2), 403, "write under another's base");
  assert.equal(await acl('u4/701/shutter/command', 2), 403, 'never its own command topic');
  assert.equal(await acl('u4/701/shutter/command', 4), 200, 'subscribe to its command topic');
  assert.equal(await acl('u4/701/shutter/#', 4), 403, 'no other filter');
  assert.equal(await acl('u4/701/shutter/command', 1), 200, 'orders delivered to it');
  assert.equal(await acl('u4/702/shutter/command', 1), 403, "not a room-mate's orders");
  assert.equal(await acl('u4/701/shutter/data', 3), 403, 'read and write: read is not allowed there');
  assert.equal(await check('acl', { username: 'nobody', clientid: 'x', topic: 'u4/701/shutter/data', acc: 2 }), 403);
  assert.equal(await check('acl', { username: A, clientid: 'x', topic: 'u4/701/shutter/data', acc: 'write' }), 400, 'a malformed check is refused, not allowed');

  // Disabled in the registry (by another process): refused at once, logins and ACLs alike.
  assert.equal((await runToEnd(['devices', 'disable', A, '-c', cfg])).code, 0);
  assert.equal(await check('user', { username: A, password: pwA, clientid: 'valve-1' }), 403);
  assert.equal(await acl('u4/701/shutter/data', 2), 403);
  assert.equal(await app.stop('SIGINT'), 0);
});
