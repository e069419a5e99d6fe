// sink.backlog and sink.backlog_ok (outbox.backlogAlert), from a runner whose real mqtt sink has no broker to reach
// (a closed port) until the test starts one there; and config.applied, raised by a hub at start, through its router.
import { createWithDefaults } from '../helpers/options.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Value } from '@sinclair/typebox/value';
import { systemClock } from '../../src/core/clock.js';
import type { OutboxOptions } from '../../src/core/config/schema.js';
import { buildConfig } from '../../src/runtime/config.js';
import { EVENT_TYPES, type HubEvent } from '../../src/core/events.js';
import { createLogger } from '../../src/core/logger.js';
import type { Reading } from '../../src/core/types.js';
import { memoryOutbox } from '../../src/outbox/journal.js';
import { SinkRunner } from '../../src/outbox/runner.js';
import { configHash, Hub } from '../../src/runtime/hub.js';
import { builtinRegistry } from '../../src/runtime/registry.js';
import { mqttSink } from '../../src/sinks/mqtt/index.js';
import { tempDir } from '../helpers/context.js';
import { freePort, startAedes } from '../helpers/servers.js';
import { reading, sinkContext, T0 } from '../sinks/messages.js';

const r = (seq: number): Reading => reading('d1', T0 + seq * 1000, { n: seq }, { seq });

const opts = (backlogAlert: number): OutboxOptions => ({
  type: 'memory',
  sync: 'full',
  maxItems: 1000,
  maxBytes: 1 << 30,
  overflow: 'drop-oldest',
  batchSize: 100,
  lingerMs: 0,
  retryMinMs: 20,
  retryMaxMs: 200, failingAfterMs: 300_000,
  backlogAlert,
});

/** The events a runner raises, and a promise for the next one of a type (failing after `ms`, not polling). */
function recorder() {
  const events: HubEvent[] = [];
  const waiting: Array<{ type: string; resolve: (e: HubEvent) => void }> = [];
  return {
    events,
    types: () => events.map((e) => e.type),
    raise(e: HubEvent): void {
      events.push(e);
      for (const w of waiting.filter((x) => x.type === e.type)) {
        waiting.splice(waiting.indexOf(w), 1);
        w.resolve(e);
      }
    },
    next(type: string, ms = 15_000): Promise<HubEvent> {
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no ${type} within ${ms} ms; raised: ${events.map((e) => e.type).join(', ')}`)), ms);
        waiting.push({ type, resolve: (e) => (clearTimeout(t), resolve(e)) });
      });
    },
  };
}

function checkSchema(e: HubEvent): void {
  assert.ok(Object.hasOwn(EVENT_TYPES, e.type), e.type);
  assert.ok(Value.Check(EVENT_TYPES[e.type as keyof typeof EVENT_TYPES].data, e.data), `${e.type} data ${JSON.stringify(e.data)}`);
}

test('sink.backlog once when a down sink\'s backlog reaches backlogAlert, sink.backlog_ok once it is down to half; again on the next crossing', { timeout: 60_000 }, async () => {
  const port = await freePort(); // nothing listens there yet
  const ctx = sinkContext({ id: 'remote' });
  const sink = createWithDefaults(mqttSink, { url: `mqtt://127.0.0.1:${port}`, topic: 't/{device}', timeoutMs: 2000 }, ctx);
  const rec = recorder();
  // One message per 20 ms once it drains, so the backlog goes down one by one and the clearing point shows.
  const o = { ...opts(4), ratePerSecond: 50, rateBurst: 1 };
  const runner = new SinkRunner('remote', 'mqtt', sink, memoryOutbox({ maxItems: 1000, maxBytes: 1 << 30, overflow: 'drop-oldest' }, systemClock), o, {
    ...ctx,
    raise: (e) => rec.raise(e),
  });
  runner.start();
  let broker: Awaited<ReturnType<typeof startAedes>> | undefined;
  try {
    for (let i = 0; i < 3; i++) await runner.enqueue([r(i)]);
    assert.deepEqual(rec.types(), [], 'under the alert: nothing');
    await runner.enqueue([r(3)]);
    assert.deepEqual(rec.types(), ['sink.backlog']);
    const high = rec.events[0]!;
    checkSchema(high);
    assert.equal(high.severity, 'warning');
    assert.equal(high.device, undefined);
    assert.equal(high.data?.['sink'], 'remote');
    assert.equal(high.data?.['items'], 4);
    assert.equal(high.data?.['threshold'], 4);
    assert.ok(Number(high.data?.['bytes']) > 0);
    assert.ok(['starting', 'retrying'].includes(String(high.data?.['state'])), String(high.data?.['state']));
    assert.match(high.message, /^sink remote: 4 messages waiting, the alert is at 4/);

    // Over the alert for longer, and more: still the one event (hysteresis).
    for (let i = 4; i < 7; i++) await runner.enqueue([r(i)]);
    assert.deepEqual(rec.types(), ['sink.backlog']);

    // The broker comes up on that port: the backlog drains, and the clearing event says how far it went.
    const ok = rec.next('sink.backlog_ok');
    broker = await startAedes(port);
    const cleared = await ok;
    checkSchema(cleared);
    assert.equal(cleared.severity, 'info');
    assert.equal(cleared.data?.['sink'], 'remote');
    assert.equal(cleared.data?.['threshold'], 4);
    assert.equal(cleared.data?.['peak'], 7);
    assert.equal(cleared.data?.['items'], 2, 'cleared at half the alert, not as soon as it is under it');
    assert.deepEqual(rec.types(), ['sink.backlog', 'sink.backlog_ok']);

    // The broker goes away again: the next crossing raises sink.backlog again, once.
    await broker.close();
    broker = undefined;
    const again = rec.next('sink.backlog');
    for (let i = 7; i < 13; i++) await runner.enqueue([r(i)]);
    await again;
    assert.deepEqual(rec.types(), ['sink.backlog', 'sink.backlog_ok', 'sink.backlog']);
  } finally {
    await runner.stop(100);
    await broker?.close();
  }
});

test('sink.backlog at start for a backlog kept from the last run; none without backlogAlert', async () => {
  const port = await freePort();
  for (const alert of [3, undefined]) {
    const ctx = sinkContext({ id: 'kept' });
    const outbox = memoryOutbox({ maxItems: 1000, maxBytes: 1 << 30, overflow: 'drop-oldest' }, systemClock);
    await outbox.put([r(0), r(1), r(2), r(3), r(4)]); // as a journal lane holds it after a restart
    const rec = recorder();
    const sink = createWithDefaults(mqttSink, { url: `mqtt://127.0.0.1:${port}`, topic: 't' }, ctx);
    const runner = new SinkRunner('kept', 'mqtt', sink, outbox, { ...opts(1), backlogAlert: alert }, { ...ctx, raise: (e) => rec.raise(e) });
    runner.start();
    try {
      await runner.enqueue([r(5)]);
      if (alert === undefined) assert.deepEqual(rec.types(), []);
      else {
        assert.deepEqual(rec.types(), ['sink.backlog']);
        assert.equal(rec.events[0]!.data?.['items'], 5, 'raised at start, before the enqueue');
        assert.equal(rec.events[0]!.data?.['state'], 'starting');
      }
    } finally {
      await runner.stop(50);
    }
  }
});

test('config.applied: raised at start through the router, first in the sink routed to; its hash ignores key order and secret values', { timeout: 60_000 }, async () => {
  const d = tempDir();
  try {
    const port = await freePort();
    const raw = (order: 'ab' | 'ba') => {
      const sinks = {
        events: { type: 'file', path: join(d.path, 'events.jsonl'), outbox: { type: 'memory' } },
        remote: {
          type: 'mqtt',
          url: `mqtt://127.0.0.1:${port}`,
          topic: 't/{device}',
          username: 'hub',
          password: { secret: 'MQTT' },
          outbox: { type: 'memory', backlogAlert: 2 },
        },
      };
      return {
        data: d.path,
        inputs: {},
        sinks: order === 'ab' ? sinks : { remote: sinks.remote, events: sinks.events },
        routes: [{ to: ['remote'] }, { match: { kind: 'event' }, to: ['events'] }],
      };
    };
    const load = (tree: unknown, password: string) =>
      buildConfig(tree, { source: join(d.path, 'hub.jsonc'), dir: d.path }, { registry: builtinRegistry(), env: { BACKHAUL_SECRET_MQTT: password } });
    const config = load(raw('ab'), 'first-secret');
    assert.equal(configHash(load(raw('ba'), 'second-secret')), configHash(config), 'the same config, keys reordered and another secret value');
    assert.notEqual(configHash(load({ ...raw('ab'), routes: [{ to: ['remote'] }] }, 'first-secret')), configHash(config), 'another config');

    const hub = new Hub({ config, logger: createLogger({ pretty: false, level: 'silent' }), drainMs: 200 });
    await hub.start();
    try {
      assert.equal(await hub.metrics.value('backhaul_events_total', { type: 'config.applied', severity: 'info' }), 1);
      // Two readings for the sink that cannot connect: its backlog reaches the alert, and the event goes to `events`.
      await hub.publish(r(0));
      await hub.publish(r(1));
      assert.equal(await hub.metrics.value('backhaul_events_total', { type: 'sink.backlog', severity: 'warning' }), 1);
    } finally {
      await hub.stop(); // the file sink delivers what it has before it closes
    }
    const lines = readFileSync(join(d.path, 'events.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(
      lines.map((l) => l['event']),
      ['config.applied', 'sink.backlog', 'alarm.raised'], // the backlog's alarm (src/devices/alarms.ts) after its cause
    );
    const applied = lines[0]!;
    assert.equal(applied['severity'], 'info');
    assert.deepEqual(applied['data'], { source: join(d.path, 'hub.jsonc'), hash: configHash(config), inputs: 0, routes: 2, sinks: 2 });
    assert.match(configHash(config), /^[0-9a-f]{64}$/);
    assert.match(String(applied['message']), /^config .*hub\.jsonc applied \([0-9a-f]{12}\): 0 input\(s\), 2 route\(s\), 2 sink\(s\)$/);
    assert.deepEqual((lines[1]!['data'] as Record<string, unknown>)['sink'], 'remote');
  } finally {
    d.cleanup();
  }
});
