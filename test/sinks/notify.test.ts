// The notify sinks (ntfy, smtp, webhook) against real far ends (node:http servers, a real smtp-server): the words,
// once per alarm, reminders on and off, quiet hours on a manual clock with the real outbox runner (held, then one
// digest), the rate limit's deferral, and which failures are fatal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { ManualClock, type Clock } from '../../src/core/clock.js';
import { SchemaValidator } from '../../src/core/config/validate.js';
import { SinkError, type Sink, type SinkDefinition } from '../../src/core/driver.js';
import { makeEvent } from '../../src/core/events.js';
import { Metrics } from '../../src/core/metrics.js';
import type { HubEvent } from '../../src/core/types.js';
import { memoryOutbox } from '../../src/outbox/journal.js';
import { SinkRunner } from '../../src/outbox/runner.js';
import { ntfySink } from '../../src/sinks/ntfy/index.js';
import { smtpSink } from '../../src/sinks/smtp/index.js';
import { webhookSink } from '../../src/sinks/webhook/index.js';
import { digestNote, DIGEST_LINES } from '../../src/sinks/notify.js';
import { driverContext } from '../helpers/context.js';
import { freePort, httpRecorder, type HttpRecorder } from '../helpers/servers.js';
import { smtpRecorder } from '../helpers/smtp.js';
import { until } from '../helpers/until.js';

const validator = new SchemaValidator();
const T0 = Date.UTC(2026, 0, 5, 14, 2); // 14:02 UTC

/** A sink as the hub makes it: options checked by its schema (defaults filled) and its `check`. */
function make(def: SinkDefinition, options: Record<string, unknown>, clock: Clock = new ManualClock(T0), metrics = new Metrics()): Sink {
  const o = structuredClone(options);
  assert.deepEqual(validator.validate(def.options, o, 'sinks.n').map(String), []);
  assert.deepEqual(def.check?.(o as never) ?? [], []);
  return def.create(o, driverContext({ id: 'n', clock, metrics }));
}

function problems(def: SinkDefinition, options: Record<string, unknown>): string[] {
  const o = structuredClone(options);
  const errors = validator.validate(def.options, o, 'sinks.n').map(String);
  return errors.length > 0 ? errors : (def.check?.(o as never) ?? []).map((p) => `${p.path}: ${p.message}`);
}

let n = 0;
/** An alarm event as the alarm keeper makes it (its own wording, which the sinks replace with a plain one). */
function alarm(type: 'alarm.raised' | 'alarm.reminder' | 'alarm.cleared', id: string, opts: { subject?: string; name?: string; at?: number; reminder?: number } = {}): HubEvent {
  const fields = { alarm: id, alarmKind: 'offline', subjectKind: 'device' as const, subject: opts.subject ?? '0d49', name: opts.name ?? 'Kitchen valve', raisedAt: T0 };
  const ts = opts.at ?? T0 + n++;
  if (type === 'alarm.raised') return makeEvent(type, fields, { ts, severity: 'warning', message: 'alarm: device 0d49 silent for 2 h (threshold 1 h)' });
  if (type === 'alarm.reminder') return makeEvent(type, { ...fields, reminder: opts.reminder ?? 1 }, { ts, severity: 'warning', message: 'reminder 1: still open after 1 h: device 0d49 silent' });
  return makeEvent(type, { ...fields, by: 'condition', durationMs: 3_600_000 }, { ts, message: 'alarm cleared after 1 h: device 0d49 spoke again' });
}

const okServer = () =>
  httpRecorder((_r, res) => {
    res.end('{}');
  });

async function withServer(fn: (srv: HttpRecorder) => Promise<void>, answer?: Parameters<typeof httpRecorder>[0]): Promise<void> {
  const srv = await (answer ? httpRecorder(answer) : okServer());
  try {
    await fn(srv);
  } finally {
    await srv.close();
  }
}

// ---------------------------------------------------------------- once per alarm, the words, reminders

test('ntfy: an alarm raised twice is one push, in plain words, with title, priority and tags headers', () =>
  withServer(async (srv) => {
    const metrics = new Metrics();
    const sink = make(ntfySink, { url: srv.url, topic: 'site-a', token: 'tk_secret' }, new ManualClock(T0), metrics);
    await sink.open();
    const raised = alarm('alarm.raised', 'al_1');
    await sink.write([raised]);
    await sink.write([raised, alarm('alarm.raised', 'al_1')]);
    assert.equal(srv.requests.length, 1, 'one message for one alarm');
    const r = srv.requests[0]!;
    assert.equal(r.url, '/site-a');
    assert.equal(r.body, 'Kitchen valve (0d49) silent since 14:02');
    assert.equal(r.headers['title'], 'Alarm: Kitchen valve');
    assert.equal(r.headers['priority'], '4', 'a warning is ntfy priority 4');
    assert.equal(r.headers['tags'], 'offline,raised');
    assert.equal(r.headers['authorization'], 'Bearer tk_secret');
    // Clearing is another word about the same alarm: it is sent, once.
    await sink.write([alarm('alarm.cleared', 'al_1'), alarm('alarm.cleared', 'al_1')]);
    assert.equal(srv.requests.length, 2);
    assert.equal(srv.requests[1]!.body, 'Kitchen valve (0d49) back to normal after 1 h (was silent since 14:02)');
    assert.equal(await metrics.value('backhaul_notify_sent_total', { sink: 'n' }), 2);
    assert.equal(await metrics.value('backhaul_notify_suppressed_total', { sink: 'n', reason: 'duplicate' }), 3);
    await sink.close();
  }));

test('ntfy: a template stage\'s words are kept; non-Latin-1 titles go RFC 2047 encoded', () =>
  withServer(async (srv) => {
    const sink = make(ntfySink, { url: srv.url, topic: 't' });
    await sink.open();
    const worded = { ...alarm('alarm.raised', 'al_2', { name: 'Küche' }), message: 'Küche: Ventil still seit 14:02' };
    await sink.write([worded]);
    assert.equal(srv.requests[0]!.body, 'Küche: Ventil still seit 14:02');
    assert.equal(srv.requests[0]!.headers['title'], `=?UTF-8?B?${Buffer.from('Alarm: Küche').toString('base64')}?=`);
    await sink.close();
  }));

test('smtp: a real SMTP server gets one mail per alarm; reminders only with reminders: true', async () => {
  const server = await smtpRecorder({ user: 'backhaul', password: 'mail-password' });
  try {
    const base = { host: '127.0.0.1', port: server.port, starttls: 'never', user: 'backhaul', password: 'mail-password', from: 'backhaul@example.org', to: ['ops@example.org', 'oncall@example.org'], subject: '[{severity}] {title}', timeoutMs: 5000 };
    const quiet = make(smtpSink, base);
    await quiet.open();
    await quiet.write([alarm('alarm.raised', 'al_3'), alarm('alarm.raised', 'al_3'), alarm('alarm.reminder', 'al_3', { reminder: 1 })]);
    await quiet.close();
    assert.equal(server.mails.length, 1, 'raised twice and a reminder: one mail');
    const m = server.mails[0]!;
    assert.equal(m.subject, '[warning] Alarm: Kitchen valve');
    assert.equal(m.text, 'Kitchen valve (0d49) silent since 14:02');
    assert.equal(m.from, 'backhaul@example.org');
    assert.deepEqual(m.to, ['ops@example.org', 'oncall@example.org']);

    const reminding = make(smtpSink, { ...base, reminders: true });
    await reminding.open();
    await reminding.write([alarm('alarm.reminder', 'al_4', { reminder: 1 }), alarm('alarm.reminder', 'al_4', { reminder: 1 }), alarm('alarm.reminder', 'al_4', { reminder: 2 })]);
    await reminding.close();
    assert.deepEqual(
      server.mails.slice(1).map((x) => x.text),
      ['Kitchen valve (0d49) still silent, since 14:02', 'Kitchen valve (0d49) still silent, since 14:02'],
      'each reminder once (by its number)',
    );
  } finally {
    await server.close();
  }
});

test('webhook: Slack and Mattermost get {text}, Discord {content}; one message per alarm', () =>
  withServer(async (srv) => {
    for (const style of ['slack', 'mattermost', 'discord'] as const) {
      const sink = make(webhookSink, { url: `${srv.url}/hooks/${style}`, style });
      await sink.open();
      await sink.write([alarm('alarm.raised', `al_${style}`), alarm('alarm.raised', `al_${style}`)]);
      await sink.close();
    }
    assert.deepEqual(
      srv.requests.map((r) => [r.url, JSON.parse(r.body) as unknown]),
      [
        ['/hooks/slack', { text: '*Alarm: Kitchen valve*\nKitchen valve (0d49) silent since 14:02' }],
        ['/hooks/mattermost', { text: '*Alarm: Kitchen valve*\nKitchen valve (0d49) silent since 14:02' }],
        ['/hooks/discord', { content: '**Alarm: Kitchen valve**\nKitchen valve (0d49) silent since 14:02' }],
      ],
    );
    assert.equal(srv.requests[0]!.headers['content-type'], 'application/json');
  }));

// ---------------------------------------------------------------- quiet hours, on a manual clock, with the runner

test('quiet hours: nothing is sent during them; the outbox keeps the messages; at their end one digest', () =>
  withServer(async (srv) => {
    const night = Date.UTC(2026, 0, 5, 23, 0); // 23:00 UTC
    const clock = new ManualClock(night);
    const metrics = new Metrics();
    const ctx = driverContext({ id: 'n', clock, metrics });
    const o = { url: srv.url, topic: 'night', quietHours: { from: '22:00', to: '07:00', timeZone: 'UTC' } };
    const sink = make(ntfySink, o, clock, metrics);
    const outbox = memoryOutbox({ maxItems: 1000, maxBytes: 1 << 24, overflow: 'drop-oldest' }, clock);
    const runner = new SinkRunner('n', 'ntfy', sink, outbox, { type: 'memory', sync: 'full', maxItems: 1000, maxBytes: 1 << 24, overflow: 'drop-oldest', batchSize: 100, lingerMs: 0, retryMinMs: 5, retryMaxMs: 20, failingAfterMs: 300_000 }, ctx);
    runner.start();
    try {
      await runner.enqueue([alarm('alarm.raised', 'al_n1', { at: night })]);
      await until(() => clock.pending() > 0, { timeoutMs: 5000, what: 'the runner waits for the quiet hours to end' });
      clock.advance(3 * 3_600_000); // 02:00
      await runner.enqueue([alarm('alarm.raised', 'al_n2', { subject: '0e11', name: 'Hall radiator', at: clock.now() }), alarm('alarm.raised', 'al_n1', { at: clock.now() })]);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(srv.requests.length, 0, 'nothing sent during quiet hours');
      assert.equal(runner.status().backlog, 3, 'held in the outbox, not dropped');
      assert.equal(runner.status().state, 'up', 'a deferral is no failure');
      clock.advance(5 * 3_600_000); // 07:00
      await until(() => srv.requests.length > 0, { timeoutMs: 5000, what: 'the digest' });
      await until(() => runner.status().backlog === 0, { timeoutMs: 5000, what: 'the held messages acknowledged' });
      assert.equal(srv.requests.length, 1, 'one digest');
      const d = srv.requests[0]!;
      assert.match(String(d.headers['title']), /^Backhaul: 2 notifications held during quiet hours/);
      assert.equal(d.body, '- Kitchen valve (0d49) silent since 14:02\n- Hall radiator (0e11) silent since 14:02');
      // After them, notifications go one by one again.
      await runner.enqueue([alarm('alarm.cleared', 'al_n1', { at: clock.now() + 1 })]);
      await until(() => srv.requests.length === 2, { timeoutMs: 5000, what: 'the next notification' });
      assert.match(srv.requests[1]!.body, /back to normal/);
      assert.equal(runner.status().retries, 0, 'no retry counted for held messages');
      assert.equal(await metrics.value('backhaul_notify_suppressed_total', { sink: 'n', reason: 'quiet_hours' }), 2);
    } finally {
      await runner.stop(100);
    }
  }));

test('quiet hours: a write during them is a deferred SinkError lasting until their end (local time zone)', async () => {
  // 21:30 UTC is 22:30 in Berlin (winter, UTC+1): inside 22:00-07:00 local, 8 h 30 min before the end.
  const clock = new ManualClock(Date.UTC(2026, 0, 5, 21, 30));
  const sink = make(webhookSink, { url: 'http://127.0.0.1:9/hook', quietHours: { from: '22:00', to: '07:00' }, timeZone: 'Europe/Berlin' }, clock);
  await sink.open();
  await assert.rejects(sink.write([alarm('alarm.raised', 'al_q')]), (e: unknown) => {
    assert.ok(e instanceof SinkError);
    assert.equal(e.deferred, true);
    assert.equal(e.retryAfterMs, 8.5 * 3_600_000);
    return true;
  });
  // Nothing to send (a duplicate-free empty batch, a reminder left out) is no reason to wait.
  assert.equal(await sink.write([alarm('alarm.reminder', 'al_q')]), undefined);
  await sink.close();
});

test('quiet hours: a sink made anew after them (a restart) still sends what they held as one digest', () =>
  withServer(async (srv) => {
    const clock = new ManualClock(Date.UTC(2026, 0, 6, 7, 30)); // 07:30, after quiet hours that ended at 07:00
    const sink = make(ntfySink, { url: srv.url, topic: 'r', quietHours: { from: '22:00', to: '07:00' } }, clock);
    await sink.open();
    await sink.write([
      alarm('alarm.raised', 'al_h1', { at: Date.UTC(2026, 0, 5, 23, 0) }),
      alarm('alarm.raised', 'al_h2', { subject: '0e11', name: 'Hall radiator', at: Date.UTC(2026, 0, 6, 2, 0) }),
      alarm('alarm.raised', 'al_h3', { subject: '0f00', name: 'Porch sensor', at: Date.UTC(2026, 0, 6, 7, 10) }),
    ]);
    await sink.close();
    assert.equal(srv.requests.length, 2, 'one digest of the night, and the one raised after it on its own');
    assert.match(String(srv.requests[0]!.headers['title']), /^Backhaul: 2 notifications held during quiet hours \(until 07:00\)/);
    assert.equal(srv.requests[1]!.body, 'Porch sensor (0f00) silent since 14:02');
  }));

test('a digest of many lists the first ones and says how many more', () => {
  const notes = Array.from({ length: DIGEST_LINES + 7 }, (_v, i) => ({ title: `t${i}`, text: `line ${i}`, severity: i === 3 ? ('critical' as const) : ('info' as const), tags: ['offline'] }));
  const d = digestNote(notes, '07:00');
  assert.equal(d.title, `Backhaul: ${DIGEST_LINES + 7} notifications held during quiet hours (until 07:00)`);
  assert.equal(d.text.split('\n').length, DIGEST_LINES + 1);
  assert.equal(d.text.split('\n').at(-1), '… and 7 more');
  assert.equal(d.severity, 'critical', 'the digest is as severe as the worst it holds');
  assert.deepEqual(d.tags, ['digest', 'offline']);
});

// ---------------------------------------------------------------- rate limit, failures

test('rate limit: over it, a deferred SinkError with the wait; the retried batch sends only what was not sent', () =>
  withServer(async (srv) => {
    const clock = new ManualClock(T0);
    const sink = make(ntfySink, { url: srv.url, topic: 'rl', rateLimit: { count: 2, perMs: 60_000 } }, clock);
    await sink.open();
    const batch = [alarm('alarm.raised', 'al_r1'), alarm('alarm.raised', 'al_r2'), alarm('alarm.raised', 'al_r3')];
    const deferred = (wait: number) => (e: unknown) => {
      assert.ok(e instanceof SinkError, String(e));
      assert.equal(e.deferred, true);
      assert.equal(e.retryable, true);
      assert.equal(e.retryAfterMs, wait);
      return true;
    };
    await assert.rejects(sink.write(batch), deferred(60_000));
    assert.equal(srv.requests.length, 2);
    clock.advance(20_000);
    await assert.rejects(sink.write(batch), deferred(40_000));
    assert.equal(srv.requests.length, 2, 'nothing sent twice, nothing over the limit');
    clock.advance(40_000);
    await sink.write(batch);
    assert.equal(srv.requests.length, 3);
    assert.deepEqual(srv.requests.map((r) => r.headers['title']), ['Alarm: Kitchen valve', 'Alarm: Kitchen valve', 'Alarm: Kitchen valve']);
    await sink.close();
  }));

test('ntfy: 429 with Retry-After is retryable with retryAfterMs; 401, 403, 404 and 410 are fatal', async () => {
  await withServer(
    async (srv) => {
      const sink = make(ntfySink, { url: srv.url, topic: 'x' });
      await sink.open();
      await assert.rejects(sink.write([alarm('alarm.raised', 'al_f')]), (e: unknown) => e instanceof SinkError && e.retryable && !e.deferred && e.retryAfterMs === 30_000);
      await sink.close();
    },
    (_r, res) => {
      res.statusCode = 429;
      res.setHeader('Retry-After', '30');
      res.end('{"error":"limit reached"}');
    },
  );
  for (const status of [401, 403, 404, 410]) {
    await withServer(
      async (srv) => {
        const sink = make(ntfySink, { url: srv.url, topic: 'x', username: 'u', password: 'pw-secret' });
        await sink.open();
        await assert.rejects(sink.write([alarm('alarm.raised', 'al_f')]), (e: unknown) => {
          assert.ok(e instanceof SinkError && !e.retryable, `${status}: ${String(e)}`);
          assert.doesNotMatch(e.message, /pw-secret|\/x\b/, 'no password or topic in the message');
          return true;
        });
        await sink.close();
        assert.equal(srv.requests[0]!.headers['authorization'], `Basic ${Buffer.from('u:pw-secret').toString('base64')}`);
      },
      (_r, res) => {
        res.statusCode = status;
        res.end('nope');
      },
    );
  }
});

test('smtp: a refused login (535) is fatal, a refused connection retryable, and neither sends a mail', async () => {
  const server = await smtpRecorder({ user: 'backhaul', password: 'right-password' });
  try {
    const base = { host: '127.0.0.1', port: server.port, starttls: 'never', from: 'b@example.org', to: ['o@example.org'], timeoutMs: 5000 };
    const wrong = make(smtpSink, { ...base, user: 'backhaul', password: 'wrong-password' });
    await wrong.open();
    await assert.rejects(wrong.write([alarm('alarm.raised', 'al_s')]), (e: unknown) => e instanceof SinkError && !e.retryable && /EAUTH/.test(e.message));
    await wrong.close();
    const nowhere = make(smtpSink, { ...base, port: await freePort() });
    await nowhere.open();
    await assert.rejects(nowhere.write([alarm('alarm.raised', 'al_s')]), (e: unknown) => e instanceof SinkError && e.retryable);
    await nowhere.close();
    assert.equal(server.mails.length, 0);
  } finally {
    await server.close();
  }
});

test('smtp: a server that never greets is a retryable timeout', async () => {
  const sockets: Socket[] = [];
  const silent = createServer((sock) => void sockets.push(sock)); // takes the connection, says nothing
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  try {
    const port = (silent.address() as AddressInfo).port;
    const sink = make(smtpSink, { host: '127.0.0.1', port, starttls: 'never', from: 'b@example.org', to: ['o@example.org'], timeoutMs: 300 });
    await sink.open();
    await assert.rejects(sink.write([alarm('alarm.raised', 'al_to')]), (e: unknown) => e instanceof SinkError && e.retryable && /ETIMEDOUT|ECONNECTION|ESOCKET/.test(e.message));
    await sink.close();
  } finally {
    for (const sock of sockets) sock.destroy();
    await new Promise<void>((r) => silent.close(() => r()));
  }
});

test('smtp: starttls "required" against a server that offers no STARTTLS is fatal, and no mail goes in clear text', async () => {
  const server = await smtpRecorder();
  try {
    const sink = make(smtpSink, { host: '127.0.0.1', port: server.port, starttls: 'required', from: 'b@example.org', to: ['o@example.org'], timeoutMs: 5000 });
    await sink.open();
    await assert.rejects(sink.write([alarm('alarm.raised', 'al_tls')]), (e: unknown) => e instanceof SinkError && !e.retryable && /starttls/.test(e.message));
    await sink.close();
    assert.equal(server.mails.length, 0);
  } finally {
    await server.close();
  }
});

test('webhook: a revoked webhook (401, 403, 404, 410) is fatal; 503 retryable', async () => {
  for (const [status, retryable] of [[401, false], [403, false], [404, false], [410, false], [503, true]] as const) {
    await withServer(
      async (srv) => {
        const sink = make(webhookSink, { url: `${srv.url}/hooks/T000/B000/secret-part`, style: 'slack' });
        await sink.open();
        await assert.rejects(sink.write([alarm('alarm.raised', 'al_w')]), (e: unknown) => {
          assert.ok(e instanceof SinkError && e.retryable === retryable, `${status}: ${String(e)}`);
          assert.doesNotMatch(e.message, /secret-part/, 'the webhook path is its credential: not in messages');
          return true;
        });
        await sink.close();
      },
      (_r, res) => {
        res.statusCode = status;
        res.end('no_such_hook');
      },
    );
  }
});

test('webhook: a url that is not one (a secret holding something else) fails open() for good', async () => {
  for (const url of ['http://exa mple/hook', 'ftp://chat.example.org/hook', 'an-example-secret-value']) {
    const sink = make(webhookSink, { url });
    await assert.rejects(sink.open(), (e: unknown) => e instanceof SinkError && !e.retryable && !e.message.includes(url), url);
  }
});

test('notify options: bad quiet hours, time zones and half logins are config problems naming the option', () => {
  assert.deepEqual(problems(ntfySink, { topic: 't', quietHours: { from: '22:00', to: '22:00' } }), [
    'quietHours.to: quiet hours that end when they begin are empty; leave quietHours out instead',
  ]);
  assert.match(problems(ntfySink, { topic: 't', timeZone: 'Mars/Olympus' }).join(), /^timeZone: unknown time zone/);
  assert.match(problems(webhookSink, { url: 'http://h/x', quietHours: { from: '22:00', to: '06:00', timeZone: 'Nowhere' } }).join(), /^quietHours\.timeZone: /);
  assert.match(problems(ntfySink, { topic: 't', quietHours: { from: '25:00', to: '06:00' } }).join(), /quietHours\/from|quietHours\.from/);
  assert.deepEqual(problems(ntfySink, { topic: 't', password: 'pw-secret' }), ['username: password is set without username']);
  assert.deepEqual(problems(smtpSink, { host: 'h', from: 'a@b', to: ['c@d'], user: 'u' }), ['password: user is set without password']);
  assert.deepEqual(problems(smtpSink, { host: 'h', from: 'a@b', to: ['c@d'], subject: '{device}' }), ['subject: unknown placeholder {device} (use {title} or {severity})']);
});
