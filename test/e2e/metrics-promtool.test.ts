// A real scrape of a running Backhaul's /metrics passes Prometheus's own linter, `promtool check metrics`
// (Debian's `prometheus` package), with Backhaul's labelled counters and gauges and prom-client's process metrics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { tempDir } from '../helpers/context.js';
import { runBackhaul } from '../helpers/process.js';
import { freePort } from '../helpers/servers.js';
import { until } from '../helpers/until.js';
import { PROMTOOL, promtoolSkip } from '../helpers/services.js';

function promtool(exposition: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(PROMTOOL, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    p.stdout.setEncoding('utf8').on('data', (c: string) => (output += c));
    p.stderr.setEncoding('utf8').on('data', (c: string) => (output += c));
    p.once('error', reject);
    p.once('exit', (code) => resolve({ code, output }));
    p.stdin.end(exposition);
  });
}

test('promtool check metrics passes on a real /metrics scrape', async (t) => {
  const skip = promtoolSkip();
  if (skip) return t.skip(skip);
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const port = await freePort();
  const apiPort = await freePort();
  const cfg = join(dir.path, 'backhaul.json');
  writeFileSync(
    cfg,
    JSON.stringify({
      data: 'data',
      inputs: { bus: { type: 'broker', host: '127.0.0.1', port, anonymous: true, decoder: 'json' } },
      sinks: { history: { type: 'sqlite' }, jsonl: { type: 'file' } },
      routes: [{ name: 'all', to: ['history', 'jsonl'] }],
      api: { host: '127.0.0.1', port: apiPort },
    }),
  );
  const app = runBackhaul(['start', '-c', cfg]);
  t.after(() => app.stop());
  await app.waitFor((l) => l.msg === 'backhaul running');
  const token = /^\s+(bh_\S+)\s*$/m.exec(app.output())?.[1];
  assert.ok(token, 'the first start prints an admin token');

  // Give Backhaul's own labelled metrics values: readings, a decode error, an unknown device registered.
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 });
  t.after(() => client.endAsync());
  await client.publishAsync('devices/kitchen', JSON.stringify({ device: 'kitchen', temperature: 21.5 }), { qos: 1 });
  await client.publishAsync('devices/kitchen', '{"device": ', { qos: 1 });
  const scrape = async () => {
    const res = await fetch(`http://127.0.0.1:${apiPort}/metrics`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200);
    return res.text();
  };
  await until(async () => /backhaul_sink_delivered_total\{sink="jsonl"\} 1\b/.test(await scrape()), { what: 'the reading was delivered' });

  const text = await scrape();
  for (const name of ['backhaul_frames_total', 'backhaul_decode_errors_total', 'backhaul_sink_backlog_items', 'backhaul_devices', 'process_cpu_seconds_total', 'nodejs_active_handles']) {
    assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), `${name} is exposed`);
  }
  const lint = await promtool(text);
  assert.equal(lint.code, 0, `promtool check metrics:\n${lint.output}`);
  assert.equal(lint.output.trim(), '');
});
