import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { formatConsoleLine } from '../../src/sinks/console/index.js';
import { offline, reading, T0, valve } from './messages.js';

test('console text format: time, device#seq, name=value<unit>', () => {
  assert.equal(
    formatConsoleLine(valve),
    '2026-01-01T00:00:00.000Z 819c#12 temperature=16.625Cel battery=2.55V occupancy=2 boiler=true status=ok',
  );
  assert.equal(
    formatConsoleLine(reading('819c', T0, { temperature: 16.625, battery: 2.55 }, { units: { temperature: 'Cel', battery: 'V' } })),
    '2026-01-01T00:00:00.000Z 819c temperature=16.625Cel battery=2.55V',
  );
  assert.equal(formatConsoleLine(reading('d', T0, { note: 'door open' })), '2026-01-01T00:00:00.000Z d note="door open"');
  assert.equal(formatConsoleLine(offline), '2026-01-01T00:01:00.000Z [warning] device.offline 819c: silent for 2h lastSeen=1767218460000 silentMs=7200000 threshold=3600000');
});

test('console json format: the messageToJson object', () => {
  const line = formatConsoleLine(valve, 'json');
  assert.deepEqual(JSON.parse(line), {
    device: '819c',
    ts: T0,
    time: '2026-01-01T00:00:00.000Z',
    seq: 12,
    values: valve.values,
    units: valve.units,
    authenticated: true,
    input: 'radio',
  });
});

test('console sink writes one line per message to the chosen stream (real child process)', () => {
  const mod = fileURLToPath(new URL('../../src/sinks/console/index.js', import.meta.url));
  const ctxMod = fileURLToPath(new URL('../helpers/context.js', import.meta.url));
  const msgMod = fileURLToPath(new URL('./messages.js', import.meta.url));
  const script = `
    const { consoleSink } = await import(${JSON.stringify(mod)});
    const { driverContext } = await import(${JSON.stringify(ctxMod)});
    const { valve, offline } = await import(${JSON.stringify(msgMod)});
    for (const [stream, format] of [['stdout', 'text'], ['stderr', 'json']]) {
      const sink = consoleSink.create({ stream, format }, driverContext({ dataDir: '/nonexistent' }));
      await sink.open();
      await sink.write([valve, offline]);
      await sink.close();
    }`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.stdout.split('\n'), [formatConsoleLine(valve), formatConsoleLine(offline), '']);
  const errLines = r.stderr.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(errLines.length, 2);
  assert.equal(errLines[0]?.['device'], '819c');
  assert.equal(errLines[1]?.['event'], 'device.offline');
});
