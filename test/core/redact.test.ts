// Secrets wherever the config is shown: what the schemas mark secret (src/core/config/redact.ts) never appears in
// `backhaul check` (the real program), the API's /api/v1/config (a real hub, a viewer token over HTTP) or a log line,
// whether written inline or as a `{"secret": NAME}` reference; `check` warns about each one written inline.
// The shown tree is read loosely (`any`) and checked field by field.
/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildConfig } from '../../src/runtime/config.js';
import { REDACTED } from '../../src/core/config/redact.js';
import { inlineSecretValues, inlineSecretWarnings, shownConfig } from '../../src/runtime/shown-config.js';
import { createLogger, silentLogger } from '../../src/core/logger.js';
import { Hub } from '../../src/runtime/hub.js';
import { builtinRegistry } from '../../src/runtime/registry.js';
import { tempDir } from '../helpers/context.js';
import { runToEnd } from '../helpers/process.js';

const INLINE = ['inline-mqtt-pass', 'inline-url-pass', 'inline-emon-key', 'inline-bearer-token', 'inline-user-pass', 'inline-device-pass'];
const REF_VALUE = 'header-secret-from-env';

function configTree(data: string): Record<string, unknown> {
  return {
    data,
    api: { host: '127.0.0.1', port: 0 },
    devices: { declared: [{ id: 'aa:bb:cc:00:09:01', type: 'room-sensor', building: 'u4', room: '309', password: 'inline-device-pass' }] },
    inputs: { b: { type: 'broker', host: '127.0.0.1', port: 0, users: [{ username: 'svc', password: 'inline-user-pass' }] } },
    sinks: {
      m: { type: 'mqtt', url: 'mqtt://svc:inline-url-pass@127.0.0.1:9', password: 'inline-mqtt-pass' },
      e: { type: 'emoncms', url: 'http://127.0.0.1:9/emoncms', apikey: 'inline-emon-key' },
      h: {
        type: 'http',
        url: 'http://127.0.0.1:9/hook',
        headers: { Authorization: 'Bearer inline-bearer-token', 'Content-Type': 'application/json', 'X-Api-Key': { secret: 'hook_key' } },
      },
    },
    routes: [{ to: ['m', 'e', 'h'] }],
  };
}

const env = { BACKHAUL_SECRET_HOOK_KEY: REF_VALUE };

test('shownConfig redacts every marked value, keeps references and the rest, and lists each inline secret with its path', () => {
  const dir = tempDir();
  try {
    const cfg = buildConfig(configTree(dir.path), { source: 'test', dir: dir.path }, { registry: builtinRegistry(), env });
    const shown = shownConfig(cfg).tree as any;
    assert.equal(shown.sinks.m.password, REDACTED);
    assert.equal(shown.sinks.m.url, `mqtt://svc:${REDACTED}@127.0.0.1:9`);
    assert.equal(shown.sinks.e.apikey, REDACTED);
    assert.equal(shown.sinks.e.url, 'http://127.0.0.1:9/emoncms', 'no password, nothing hidden');
    assert.deepEqual(shown.sinks.h.headers, { Authorization: REDACTED, 'Content-Type': 'application/json', 'X-Api-Key': { secret: 'hook_key' } });
    assert.deepEqual(shown.inputs.b.users, [{ username: 'svc', password: REDACTED }]);
    assert.equal(shown.devices.declared[0].password, REDACTED);
    assert.equal(shown.devices.declared[0].room, '309');
    const text = JSON.stringify(shown);
    for (const v of [...INLINE, REF_VALUE]) assert.ok(!text.includes(v), v);
    assert.deepEqual(inlineSecretWarnings(cfg).map((w) => w.split(':')[0]).sort(), [
      'devices.declared[0].password',
      'inputs.b.users[0].password',
      'sinks.e.apikey',
      'sinks.h.headers.Authorization',
      'sinks.m.password',
      'sinks.m.url',
    ]);
    assert.deepEqual(inlineSecretValues(cfg).sort(), [...INLINE.slice(0, 3), 'Bearer inline-bearer-token', ...INLINE.slice(4)].sort());
    // The tree as loaded still has them: only what is shown changes.
    assert.equal((cfg.redacted as any).sinks.m.password, 'inline-mqtt-pass');

    // Log lines: inline secrets are scrubbed like resolved ones.
    const lines: string[] = [];
    const logger = createLogger({ level: 'info', destination: { write: (s: string) => void lines.push(s) }, secrets: () => [...cfg.secretValues, ...inlineSecretValues(cfg)] });
    logger.info({ options: cfg.redacted }, 'what the config said');
    logger.info(`connecting with inline-emon-key and ${REF_VALUE}`);
    for (const v of [...INLINE, REF_VALUE]) assert.ok(!lines.join('').includes(v), v);
  } finally {
    dir.cleanup();
  }
});

test('backhaul check (the real program) prints no secret, shows references by name, and warns about each inline one', async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const file = join(dir.path, 'backhaul.json');
  writeFileSync(file, JSON.stringify(configTree(dir.path)));
  const r = await runToEnd(['check', '-c', file], env);
  assert.equal(r.code, 0, r.stderr);
  for (const v of [...INLINE, REF_VALUE]) assert.ok(!r.stdout.includes(v) && !r.stderr.includes(v), `${v} in ${r.stdout}`);
  assert.match(r.stdout, /apikey=<redacted>/);
  assert.match(r.stdout, /X-Api-Key: <secret hook_key>/);
  assert.match(r.stdout, /sinks\.m\.password: a secret written inline; write \{"secret": "NAME"\}/);
  assert.match(r.stdout, /devices\.declared\[0\]\.password: a secret written inline/);
});

test('/api/v1/config read with a viewer token shows no secret, inline or resolved', async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  let admin = '';
  const cfg = buildConfig(configTree(dir.path), { source: 'test', dir: dir.path }, { registry: builtinRegistry(), env });
  const hub = new Hub({ config: cfg, logger: silentLogger(), onFirstAdminToken: (tok) => (admin = tok) });
  await hub.start();
  t.after(() => hub.stop());
  const base = hub.apiUrl()!;
  const made = await fetch(`${base}/api/v1/tokens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'look', role: 'viewer' }),
  });
  const viewer = ((await made.json()) as { token: string }).token;
  const res = await fetch(`${base}/api/v1/config`, { headers: { authorization: `Bearer ${viewer}` } });
  assert.equal(res.status, 200);
  const text = await res.text();
  for (const v of [...INLINE, REF_VALUE]) assert.ok(!text.includes(v), `${v} in ${text}`);
  const body = JSON.parse(text) as { sinks: { e: { apikey: string }; h: { headers: Record<string, unknown> } } };
  assert.equal(body.sinks.e.apikey, REDACTED);
  assert.deepEqual(body.sinks.h.headers['X-Api-Key'], { secret: 'hook_key' });
});
