// The data folder through the real program: created 0700 with every file in it 0600 (SQLite files with their -wal
// and -shm, the outboxes, the token file, the file sink's JSON lines, the control socket), and a warning naming each
// path and mode when an existing folder or file is wider. Also: BACKHAUL_LOG_LEVEL wins over the config.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { tempDir } from '../helpers/context.js';
import { runBackhaul, runToEnd } from '../helpers/process.js';
import { freePort } from '../helpers/servers.js';
import { until } from '../helpers/until.js';

/** Every entry under `dir` (the folder itself first) with its permission bits. */
function modes(dir: string): Array<[string, number]> {
  const out: Array<[string, number]> = [[dir, lstatSync(dir).mode & 0o777]];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    const st = lstatSync(p);
    if (st.isDirectory()) out.push(...modes(p));
    else out.push([p, st.mode & 0o777]);
  }
  return out;
}

function configFile(dir: string, port: number, extra = '', apiPort = 0): string {
  const cfg = join(dir, 'backhaul.jsonc');
  writeFileSync(
    cfg,
    `{
      "data": "data",
      ${extra}
      "inputs": { "bus": { "type": "broker", "host": "127.0.0.1", "port": ${port}, "anonymous": true, "decoder": "json" } },
      "sinks": {
        "history": { "type": "sqlite" },
        "jsonl":   { "type": "file" },
        "nested":  { "type": "file", "path": "data/export/readings.jsonl" }
      },
      "routes": [ { "to": ["history", "jsonl", "nested"] } ],
      "api": { "host": "127.0.0.1", "port": ${apiPort} }
    }`,
  );
  return cfg;
}

test('a fresh data folder is made 0700 and every file Backhaul writes in it 0600, -wal and -shm included', async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const port = await freePort();
  const cfg = configFile(dir.path, port);
  const app = runBackhaul(['start', '-c', cfg]);
  t.after(() => app.stop());
  await app.waitFor((l) => l.msg === 'backhaul running');
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 });
  t.after(() => client.endAsync());
  await client.publishAsync('devices/kitchen', JSON.stringify({ device: 'kitchen', temperature: 21.5 }), { qos: 1 });
  const data = join(dir.path, 'data');
  const nested = join(data, 'export/readings.jsonl');
  await until(() => existsSync(nested) && readFileSync(nested, 'utf8').includes('kitchen'), { what: 'the file sink wrote the reading' });
  await until(() => existsSync(join(data, 'readings.jsonl')) && readFileSync(join(data, 'readings.jsonl'), 'utf8').includes('kitchen'), { what: 'the default file sink' });

  // The files this test is about are all there while it runs (SQLite keeps -wal and -shm open); the historian makes
  // its file on its own thread, which may come after the file sinks' lines.
  const expected = ['/registry.sqlite-wal', '/registry.sqlite-shm', '/tokens.sqlite', '/history.sqlite-wal', '/journal.sqlite-shm', '/control.sock', '/export'];
  await until(() => expected.every((f) => existsSync(join(data, f))), { what: `every one of ${expected.join(' ')}` });
  const running = modes(data);
  const names = running.map(([p]) => p.slice(data.length));
  for (const f of expected) assert.ok(names.includes(f), `${f} exists; found ${names.join(' ')}`);
  const wrong = (list: Array<[string, number]>) =>
    list.filter(([p, m]) => m !== (lstatSync(p).isDirectory() ? 0o700 : 0o600)).map(([p, m]) => `${p} ${m.toString(8)}`);
  assert.deepEqual(wrong(running), [], 'while running');
  assert.ok(!app.logs.some((l) => typeof l.msg === 'string' && l.msg.startsWith('data ')), 'a fresh folder draws no warning');

  assert.equal(await app.stop(), 0);
  assert.deepEqual(wrong(modes(data)), [], 'after stopping');
  const check = await runToEnd(['check', '-c', cfg]);
  assert.equal(check.code, 0, check.stderr);
  assert.doesNotMatch(check.stdout, /open to group or others/);
});

test('an existing data folder or file wider than 0700/0600 is named with its mode at start and by check, and left as it is', async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const port = await freePort();
  const cfg = configFile(dir.path, port);
  const data = join(dir.path, 'data');
  mkdirSync(data);
  chmodSync(data, 0o755);
  const jsonl = join(data, 'readings.jsonl');
  writeFileSync(jsonl, '');
  chmodSync(jsonl, 0o644);

  const check = await runToEnd(['check', '-c', cfg]);
  assert.equal(check.code, 0, check.stderr);
  assert.ok(check.stdout.includes(`data folder ${data} is mode 0755, open to group or others (Backhaul makes 0700): chmod 700 ${data}`), check.stdout);
  assert.ok(check.stdout.includes(`data file ${jsonl} is mode 0644, open to group or others (Backhaul makes 0600): chmod 600 ${jsonl}`), check.stdout);

  const app = runBackhaul(['start', '-c', cfg]);
  t.after(() => app.stop());
  await app.waitFor((l) => l.msg === 'backhaul running');
  const warned = app.logs.filter((l) => l.level === 40 && typeof l['path'] === 'string').map((l) => [l['path'], l['mode']]);
  assert.deepEqual(warned, [
    [data, '755'],
    [jsonl, '644'],
  ]);
  // Files Backhaul creates in it are still private; what the operator made stays as it was.
  assert.equal(lstatSync(join(data, 'registry.sqlite')).mode & 0o777, 0o600);
  assert.equal(lstatSync(data).mode & 0o777, 0o755);
  assert.equal(await app.stop(), 0);
});

test('BACKHAUL_LOG_LEVEL wins over the config\'s log level; one that is no level is a usage error', async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const port = await freePort();
  const apiPort = await freePort();
  const cfg = configFile(dir.path, port, '"log": { "level": "warn" },', apiPort);
  // The config says warn: the info line "backhaul running" appears only because the environment says debug.
  const app = runBackhaul(['start', '-c', cfg], { BACKHAUL_LOG_LEVEL: 'debug' });
  t.after(() => app.stop());
  await app.waitFor((l) => l.msg === 'backhaul running');
  assert.equal(await app.stop(), 0);

  // Without the variable the config's level holds (the helper sets info unless told otherwise).
  const quiet = runBackhaul(['start', '-c', cfg], { BACKHAUL_LOG_LEVEL: '' });
  // Nothing is logged at info, so readiness comes from the API.
  await until(
    () => fetch(`http://127.0.0.1:${apiPort}/api/v1/ready`).then((r) => r.ok, () => false),
    { what: 'the second run is ready' },
  );
  assert.equal(await quiet.stop(), 0);
  assert.ok(!quiet.logs.some((l) => l.level < 40), `only warnings and worse at level warn: ${JSON.stringify(quiet.logs.slice(0, 3))}`);

  const bad = await runToEnd(['start', '-c', cfg], { BACKHAUL_LOG_LEVEL: 'loud' });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^BH_USAGE BACKHAUL_LOG_LEVEL="loud" is no log level; use one of fatal, error, warn, info, debug, trace, silent/m);
});
