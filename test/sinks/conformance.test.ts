// Every sink type in the registry against the conformance suite (conformance.ts), each with a real far end: an
// embedded aedes broker (mqtt), node:http servers on port 0 (http, emoncms), a temp folder (sqlite, file) and a
// captured process stream (console). A sink type without a harness here fails the first test: a new sink gets its
// contract test by adding one entry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Aedes, type AedesOptions } from 'aedes';
import Database from 'better-sqlite3';
import { Historian } from '../../src/sinks/sqlite/index.js';
import { builtinRegistry } from '../../src/runtime/registry.js';
import { connect as natsConnect } from 'nats';
import { freePort, httpRecorder } from '../helpers/servers.js';
import { natsServerSkip, startNats } from '../helpers/nats.js';
import { freshSchema, POSTGRES_URL, postgresSkip } from '../helpers/postgres.js';
import { PgHistorian } from '../../src/sinks/postgres/index.js';
import pg from 'pg';
import { smtpRecorder } from '../helpers/smtp.js';
import { sinkConformance, type FailingFarEnd, type FarEnd, type RefusingFarEnd, type SinkHarness } from './conformance.js';

/** The `seq` of the readings in a JSON message or array of them (events and other messages have none). */
function seqsOf(json: unknown): number[] {
  const items = Array.isArray(json) ? json : [json];
  return items.flatMap((m: unknown) => (typeof m === 'object' && m !== null && 'seq' in m && typeof m.seq === 'number' && !('event' in m) ? [m.seq] : []));
}

// ---------------------------------------------------------------- mqtt: an embedded aedes broker

/** aedes sends the PUBACK after `authorizePublish` calls back, so what this records is what the broker took. */
async function aedesFarEnd(opts: AedesOptions = {}): Promise<FarEnd & { readonly stop: () => Promise<void> }> {
  const got: number[] = [];
  const broker = await Aedes.createBroker({
    ...opts,
    authorizePublish: (_client, packet, callback) => {
      got.push(...seqsOf(JSON.parse(packet.payload.toString('utf8'))));
      callback(null);
    },
  });
  const server = createServer(broker.handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await new Promise<void>((r) => broker.close(() => r()));
    await new Promise<void>((r) => server.close(() => r()));
  };
  return {
    // One message per reading, so each carries its seq; 2 s bounds a write that would otherwise wait for a PUBACK.
    options: { url: `mqtt://127.0.0.1:${port}`, topic: 'conf/{device}', timeoutMs: 2000 },
    arrived: () => Promise.resolve([...got]),
    close: stop,
    stop,
  };
}

const mqttHarness: SinkHarness = {
  farEnd: () => aedesFarEnd(),
  retryable: [
    {
      name: 'a broker that cannot be reached',
      at: 'write',
      async make() {
        const port = await freePort();
        return { options: { url: `mqtt://127.0.0.1:${port}`, timeoutMs: 2000 }, close: () => Promise.resolve() };
      },
    },
    {
      name: 'a broker that went away after open',
      at: 'write',
      async make() {
        const far = await aedesFarEnd();
        return { options: far.options, breakNow: far.stop, close: far.close };
      },
    },
  ],
  fatal: [
    {
      name: 'a broker refusing the credentials (CONNACK 4)',
      at: 'open',
      async make(): Promise<FailingFarEnd> {
        const far = await aedesFarEnd({
          authenticate: (_c, _u, _p, done) => done(Object.assign(new Error('bad username or password'), { returnCode: 4 as const }), false),
        });
        return { options: { ...far.options, username: 'conf', password: 'wrong-password' }, close: far.close };
      },
    },
  ],
  rejections: { notApplicable: 'MQTT 3.1.1 cannot refuse one publish: a PUBACK accepts it, a refusal closes the connection (a retryable failure)' },
};

// ---------------------------------------------------------------- nats: a private nats-server with JetStream

const natsSkip = natsServerSkip();

/** A private NATS server with a stream capturing `conf.>`; `arrived` reads the stream back in order. */
async function natsFarEnd(dataDir: string, withStream = true): Promise<FarEnd & { readonly stop: () => Promise<void> }> {
  const server = await startNats(mkdtempSync(join(dataDir, 'nats-')));
  const nc = await natsConnect({ servers: server.url });
  const jsm = await nc.jetstreamManager();
  if (withStream) await jsm.streams.add({ name: 'CONF', subjects: ['conf.>'] });
  return {
    options: { servers: server.url, subject: 'conf.readings.{device}', eventSubject: 'conf.events.{type}', timeoutMs: 2000 },
    async arrived() {
      const info = await jsm.streams.info('CONF');
      const out: number[] = [];
      for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
        const m = await jsm.streams.getMessage('CONF', { seq });
        out.push(...seqsOf(JSON.parse(new TextDecoder().decode(m.data))));
      }
      return out;
    },
    stop: () => server.stop(),
    async close() {
      await nc.close();
      await server.stop();
    },
  };
}

const natsHarness: SinkHarness = {
  skip: natsSkip,
  farEnd: (dir) => natsFarEnd(dir),
  retryable: [
    {
      name: 'a server that cannot be reached',
      at: 'open',
      async make() {
        const port = await freePort();
        return { options: { servers: `nats://127.0.0.1:${port}`, timeoutMs: 1000 }, close: () => Promise.resolve() };
      },
    },
    {
      name: 'a server that went away after open',
      at: 'write',
      async make(dir) {
        const far = await natsFarEnd(dir);
        return { options: far.options, breakNow: far.stop, close: far.close };
      },
    },
    {
      name: 'no stream capturing the subject',
      at: 'write',
      async make(dir) {
        const far = await natsFarEnd(dir, false);
        return { options: far.options, close: far.close };
      },
    },
  ],
  fatal: [
    {
      name: 'a server refusing the credentials',
      at: 'open',
      async make(dir): Promise<FailingFarEnd> {
        const server = await startNats(mkdtempSync(join(dir, 'nats-')), { user: 'conf', pass: 'right-password' });
        return { options: { servers: server.url, user: 'conf', password: 'wrong-password', timeoutMs: 2000 }, close: () => server.stop() };
      },
    },
  ],
  rejections: { notApplicable: 'a JetStream stream acknowledges each publish or fails it; there is no refusal of one reading for good' },
};

// ---------------------------------------------------------------- postgres: the CI's PostgreSQL, a fresh schema each

const pgSkip = await postgresSkip();

function pgFarEnd(extra: Record<string, unknown> = {}): Promise<FarEnd & { schema: string }> {
  const schema = freshSchema('bh_conf');
  const reader = new PgHistorian({ url: POSTGRES_URL, schema: schema.name, connectTimeoutMs: 5000, statementTimeoutMs: 30_000 });
  return Promise.resolve({
    schema: schema.name,
    options: { url: POSTGRES_URL, schema: schema.name, ...extra },
    async arrived() {
      // Before the sink made the tables there is nothing.
      return (await reader.queryReadings({}).catch(() => [])).map((r) => r.seq ?? -1);
    },
    async close() {
      await reader.end();
      await schema.drop();
    },
  });
}

const postgresHarness: SinkHarness = {
  skip: pgSkip,
  farEnd: () => pgFarEnd(),
  retryable: [
    {
      name: 'a server that cannot be reached',
      at: 'open',
      async make() {
        const port = await freePort();
        return { options: { url: `postgres://postgres@127.0.0.1:${port}/test`, connectTimeoutMs: 1000 }, close: () => Promise.resolve() };
      },
    },
    {
      // Another session holds the table: the write waits past statementTimeoutMs and is cancelled (SQLSTATE 57014).
      name: 'the readings table locked by another session past the statement timeout',
      at: 'write',
      async make() {
        const far = await pgFarEnd({ statementTimeoutMs: 500 });
        const locker = new pg.Client({ connectionString: POSTGRES_URL });
        return {
          options: far.options,
          async breakNow() {
            await locker.connect();
            await locker.query('BEGIN');
            await locker.query(`LOCK TABLE "${far.schema}".readings IN ACCESS EXCLUSIVE MODE`);
          },
          async close() {
            await locker.query('ROLLBACK').catch(() => undefined);
            await locker.end().catch(() => undefined);
            await far.close();
          },
        };
      },
    },
  ],
  fatal: [
    {
      name: 'a database that does not exist (SQLSTATE 3D000)',
      at: 'open',
      make: () => Promise.resolve({ options: { url: POSTGRES_URL.replace(/\/[^/]*$/, '/bh_no_such_database') }, close: () => Promise.resolve() }),
    },
  ],
  rejections: { notApplicable: 'the historian stores every reading of a batch in one transaction, or fails the whole batch' },
};

// ---------------------------------------------------------------- http and emoncms: node:http servers on port 0

type Answer = { status: number; body: string };

/** An HTTP server answering with `answer(request)`; `arrived` are the seqs of the requests it accepted (2xx, "ok"). */
async function httpFarEnd(
  options: (url: string) => Record<string, unknown>,
  seqsOfRequest: (body: string) => number[],
  answer: (seqs: number[], refused: ReadonlySet<number>) => Answer,
): Promise<RefusingFarEnd> {
  const got: number[] = [];
  let refused = new Set<number>();
  const srv = await httpRecorder((req, res) => {
    const seqs = seqsOfRequest(req.body);
    const a = answer(seqs, refused);
    if (a.status >= 200 && a.status < 300 && a.body !== 'refused') got.push(...seqs.filter((s) => !refused.has(s)));
    res.statusCode = a.status;
    res.end(a.body === 'refused' ? '{"success":false,"message":"Input rejected: value out of range"}' : a.body);
  });
  return {
    options: options(srv.url),
    arrived: () => Promise.resolve([...got]),
    refuse: (seqs) => (refused = new Set(seqs)),
    close: () => srv.close(),
  };
}

/** A server that answers every request with `status`. */
async function answering(options: (url: string) => Record<string, unknown>, status: number, body = 'no'): Promise<FailingFarEnd> {
  const srv = await httpRecorder((_r, res) => {
    res.statusCode = status;
    res.end(body);
  });
  return { options: options(srv.url), close: () => srv.close() };
}

async function refusedPort(options: (url: string) => Record<string, unknown>): Promise<FailingFarEnd> {
  const port = await freePort(); // nothing listens there: connection refused
  return { options: options(`http://127.0.0.1:${port}`), close: () => Promise.resolve() };
}

const httpOptions = (url: string) => ({ url: `${url}/hook`, timeoutMs: 2000 });
const webhookSeqs = (body: string) => seqsOf(JSON.parse(body));

const httpHarness: SinkHarness = {
  farEnd: () => httpFarEnd(httpOptions, webhookSeqs, () => ({ status: 204, body: '' })),
  retryable: [
    { name: 'HTTP 503', at: 'write', make: () => answering(httpOptions, 503) },
    { name: 'HTTP 429', at: 'write', make: () => answering(httpOptions, 429) },
    { name: 'a connection refused', at: 'write', make: () => refusedPort(httpOptions) },
  ],
  fatal: [
    { name: 'HTTP 401', at: 'write', make: () => answering(httpOptions, 401) },
    { name: 'HTTP 404', at: 'write', make: () => answering(httpOptions, 404) },
    { name: 'a redirect (HTTP 302)', at: 'write', make: () => answering(httpOptions, 302) },
  ],
  // The webhook answers for the whole request: 400, 413 and 422 refuse every item of it.
  rejections: {
    granularity: 'batch',
    farEnd: () => httpFarEnd(httpOptions, webhookSeqs, (seqs, refused) => (seqs.some((s) => refused.has(s)) ? { status: 422, body: 'bad value' } : { status: 200, body: 'ok' })),
  },
};

const emoncmsOptions = (url: string) => ({ url, apikey: 'conf-write-key', timeoutMs: 2000 });
/** `post` mode: one `input/post` per reading, its values in `fulljson`. */
const emoncmsSeqs = (body: string): number[] => {
  const full = new URLSearchParams(body).get('fulljson');
  const n = full === null ? undefined : (JSON.parse(full) as { n?: unknown }).n;
  return typeof n === 'number' ? [n] : [];
};

const emoncmsHarness: SinkHarness = {
  farEnd: () => httpFarEnd(emoncmsOptions, emoncmsSeqs, () => ({ status: 200, body: 'ok' })),
  retryable: [
    { name: 'HTTP 503', at: 'write', make: () => answering(emoncmsOptions, 503) },
    { name: 'a connection refused', at: 'write', make: () => refusedPort(emoncmsOptions) },
  ],
  fatal: [
    { name: 'HTTP 401 (the API key refused)', at: 'write', make: () => answering(emoncmsOptions, 401) },
    { name: 'an HTML page instead of the input API (a wrong url)', at: 'write', make: () => answering(emoncmsOptions, 200, '<html>login</html>') },
  ],
  // `post` mode sends one request per reading, and emoncms answers each: only the refused reading is rejected.
  rejections: {
    granularity: 'item',
    farEnd: () => httpFarEnd(emoncmsOptions, emoncmsSeqs, (seqs, refused) => (seqs.some((s) => refused.has(s)) ? { status: 200, body: 'refused' } : { status: 200, body: 'ok' })),
  },
};

// ---------------------------------------------------------------- sqlite and file: a temp folder

const sqliteHarness: SinkHarness = {
  farEnd: (dir) =>
    Promise.resolve({
      options: {},
      arrived() {
        const h = Historian.open(join(dir, 'history.sqlite'), { readonly: true });
        try {
          return Promise.resolve(h.queryReadings({}).map((r) => r.seq ?? -1));
        } finally {
          h.close();
        }
      },
      close: () => Promise.resolve(),
    }),
  retryable: [
    {
      // SQLite's busy wait (5 s) runs out: SQLITE_BUSY, which passes once the other writer commits.
      name: 'a write lock another process holds past the busy timeout',
      at: 'write',
      make(dir) {
        let lock: Database.Database | undefined;
        return Promise.resolve({
          options: {},
          breakNow() {
            lock = new Database(join(dir, 'history.sqlite'));
            lock.exec('BEGIN IMMEDIATE');
            return Promise.resolve();
          },
          close() {
            lock?.exec('ROLLBACK');
            lock?.close();
            return Promise.resolve();
          },
        });
      },
    },
  ],
  fatal: [
    {
      name: 'a file that is not a SQLite database',
      at: 'open',
      make(dir) {
        writeFileSync(join(dir, 'history.sqlite'), 'this is not a database, and no retry makes it one\n'.repeat(100));
        return Promise.resolve({ options: {}, close: () => Promise.resolve() });
      },
    },
  ],
  rejections: { notApplicable: 'the historian stores every reading of a batch in one transaction, or fails the whole batch' },
};

const fileHarness: SinkHarness = {
  farEnd: (dir) =>
    Promise.resolve({
      options: {},
      arrived() {
        let text = '';
        try {
          text = readFileSync(join(dir, 'readings.jsonl'), 'utf8');
        } catch {
          text = '';
        }
        return Promise.resolve(
          text
            .split('\n')
            .filter((l) => l !== '')
            .flatMap((l) => seqsOf(JSON.parse(l))),
        );
      },
      close: () => Promise.resolve(),
    }),
  retryable: [
    // /dev/full fails every write with ENOSPC: a full disk, which may pass.
    { name: 'a full disk (ENOSPC, /dev/full)', at: 'write', make: () => Promise.resolve({ options: { path: '/dev/full' }, close: () => Promise.resolve() }) },
  ],
  fatal: [{ name: 'a path that is a folder (EISDIR)', at: 'open', make: (dir) => Promise.resolve({ options: { path: dir }, close: () => Promise.resolve() }) }],
  rejections: { notApplicable: 'a file takes every line; nothing refuses one' },
};

// ---------------------------------------------------------------- console: a captured stream

/**
 * Puts a stream in the place of `process.stderr` while the far end lives. It is a real Writable: the sink's write
 * callback fires once the stream took the chunk (or failed it, with `failing`). Lines that are not the sink's (the
 * test runner's, a warning) go on to the real stderr.
 */
function capturedStderr(failing: boolean): FarEnd {
  const real = process.stderr;
  const got: number[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      const text = chunk.toString('utf8');
      if (!text.includes('"input":"conf"')) {
        real.write(chunk, cb);
        return;
      }
      if (failing) {
        cb(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
        return;
      }
      for (const line of text.split('\n').filter((l) => l !== '')) got.push(...seqsOf(JSON.parse(line)));
      cb();
    },
  });
  stream.on('error', () => undefined); // the failure reaches the sink through its write callback
  Object.defineProperty(process, 'stderr', { configurable: true, enumerable: true, get: () => stream });
  return {
    options: { stream: 'stderr', format: 'json' },
    arrived: () => Promise.resolve([...got]),
    close() {
      Object.defineProperty(process, 'stderr', { configurable: true, enumerable: true, get: () => real });
      return Promise.resolve();
    },
  };
}

const consoleHarness: SinkHarness = {
  farEnd: () => Promise.resolve(capturedStderr(false)),
  retryable: [{ name: 'a stream that fails the write (EPIPE)', at: 'write', make: () => Promise.resolve(capturedStderr(true)) }],
  fatal: { notApplicable: 'console has nothing an operator must fix: its options are all checked by the schema, and a stream error may pass' },
  rejections: { notApplicable: 'a stream takes every line; nothing refuses one' },
};

// ---------------------------------------------------------------- ntfy, webhook and smtp: notify sinks

/** The seq in a notify sink's default wording of a conformance reading (`conf1: n = 7`); none in other messages. */
const notifySeqs = (text: string): number[] => {
  const m = /\bn = (\d+)\b/.exec(text);
  return m ? [Number(m[1])] : [];
};

const ntfyOptions = (url: string) => ({ url, topic: 'conf', timeoutMs: 2000 });

const ntfyHarness: SinkHarness = {
  // ntfy takes one message per request: the body is the text.
  farEnd: () => httpFarEnd(ntfyOptions, notifySeqs, () => ({ status: 200, body: '{"id":"x"}' })),
  retryable: [
    { name: 'HTTP 503', at: 'write', make: () => answering(ntfyOptions, 503) },
    { name: 'HTTP 429', at: 'write', make: () => answering(ntfyOptions, 429) },
    { name: 'a connection refused', at: 'write', make: () => refusedPort(ntfyOptions) },
  ],
  fatal: [
    { name: 'HTTP 401 (the token refused)', at: 'write', make: () => answering(ntfyOptions, 401) },
    { name: 'HTTP 403', at: 'write', make: () => answering(ntfyOptions, 403) },
    { name: 'HTTP 404', at: 'write', make: () => answering(ntfyOptions, 404) },
    { name: 'HTTP 410', at: 'write', make: () => answering(ntfyOptions, 410) },
  ],
  // One request per notification, each answered: only the refused one is rejected.
  rejections: {
    granularity: 'item',
    farEnd: () => httpFarEnd(ntfyOptions, notifySeqs, (seqs, refused) => (seqs.some((s) => refused.has(s)) ? { status: 400, body: '{"error":"invalid request"}' } : { status: 200, body: '{}' })),
  },
};

const webhookOptions = (url: string) => ({ url: `${url}/hooks/conf-token`, style: 'mattermost', timeoutMs: 2000 });
const chatSeqs = (body: string): number[] => {
  const j = JSON.parse(body) as { text?: unknown; content?: unknown };
  return notifySeqs(typeof j.text === 'string' ? j.text : typeof j.content === 'string' ? j.content : '');
};

const webhookHarness: SinkHarness = {
  farEnd: () => httpFarEnd(webhookOptions, chatSeqs, () => ({ status: 200, body: 'ok' })),
  retryable: [
    { name: 'HTTP 503', at: 'write', make: () => answering(webhookOptions, 503) },
    { name: 'a connection refused', at: 'write', make: () => refusedPort(webhookOptions) },
  ],
  fatal: [
    { name: 'HTTP 401', at: 'write', make: () => answering(webhookOptions, 401) },
    { name: 'HTTP 404 (a revoked webhook)', at: 'write', make: () => answering(webhookOptions, 404) },
    { name: 'HTTP 410', at: 'write', make: () => answering(webhookOptions, 410) },
  ],
  rejections: {
    granularity: 'item',
    farEnd: () => httpFarEnd(webhookOptions, chatSeqs, (seqs, refused) => (seqs.some((s) => refused.has(s)) ? { status: 400, body: 'invalid_payload' } : { status: 200, body: 'ok' })),
  },
};

const smtpOptions = (port: number) => ({ host: '127.0.0.1', port, starttls: 'never', from: 'backhaul@example.org', to: ['ops@example.org'], timeoutMs: 2000 });

/** A real SMTP server; `arrived` are the seqs of the mails it took. */
async function smtpFarEnd(): Promise<RefusingFarEnd> {
  const srv = await smtpRecorder();
  let refused = new Set<number>();
  srv.answer = (mail) => (notifySeqs(mail.text).some((s) => refused.has(s)) ? 554 : undefined);
  return {
    options: smtpOptions(srv.port),
    arrived: () => Promise.resolve(srv.mails.flatMap((m) => notifySeqs(m.text))),
    refuse: (seqs) => (refused = new Set(seqs)),
    close: () => srv.close(),
  };
}

const smtpHarness: SinkHarness = {
  farEnd: smtpFarEnd,
  retryable: [
    {
      name: 'a connection refused',
      at: 'write',
      async make() {
        const port = await freePort();
        return { options: smtpOptions(port), close: () => Promise.resolve() };
      },
    },
    {
      name: 'a 451 for the mail (try again later)',
      at: 'write',
      async make() {
        const srv = await smtpRecorder();
        srv.answer = () => 451;
        return { options: smtpOptions(srv.port), close: () => srv.close() };
      },
    },
  ],
  fatal: [
    {
      name: 'a login refused (535)',
      at: 'write',
      async make() {
        const srv = await smtpRecorder({ user: 'backhaul', password: 'right-password' });
        return { options: { ...smtpOptions(srv.port), user: 'backhaul', password: 'wrong-password' }, close: () => srv.close() };
      },
    },
  ],
  // One mail per notification: a 5xx for one is that one refused for good.
  rejections: { granularity: 'item', farEnd: smtpFarEnd },
};

// ---------------------------------------------------------------- every registered sink

const harnesses: Readonly<Record<string, SinkHarness>> = {
  mqtt: mqttHarness,
  nats: natsHarness,
  http: httpHarness,
  emoncms: emoncmsHarness,
  sqlite: sqliteHarness,
  postgres: postgresHarness,
  file: fileHarness,
  console: consoleHarness,
  ntfy: ntfyHarness,
  webhook: webhookHarness,
  smtp: smtpHarness,
};

const sinks = builtinRegistry().sinks;

test('sink conformance: every registered sink type has a harness, and every harness a sink', () => {
  assert.deepEqual([...sinks.keys()].filter((t) => !(t in harnesses)), [], 'add a harness to test/sinks/conformance.test.ts');
  assert.deepEqual(Object.keys(harnesses).filter((t) => !sinks.has(t)), [], 'a harness for a sink type no longer registered');
});

for (const [type, def] of sinks) {
  const h = harnesses[type];
  if (h) sinkConformance(def, h);
}
