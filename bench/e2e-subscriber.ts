// The subscriber of the end-to-end benchmark (bench/e2e.ts), in its own process: one mqtt.js client on the broker
// where the system under test delivers, subscribed at QoS 1; in the backlog scenario with a persistent session (clean: false, so
// messages published while it is cut off by the broker's outage wait for it at the broker). For each
// message it finds the device, its frame counter and the send time the load generator put in the frame, wherever the
// system put them:
//
//   Backhaul's mqtt sink   {"device":"1a2b","ts":…,"seq":17,"values":{"sent":1763800000123.456,"temperature":…},…}
//   Node-RED's flow        {"device":"1a2b","seq":17,"values":{"sent":…,…}}
//   bare aedes             the frame itself: {"id":"1a2b","seq":17,"sent":…,…}
//
// and counts distinct messages (device + seq), duplicates, and send → receive latency.
import { connect, type MqttClient } from 'mqtt';
import { dieWithParent, nowMs, percentiles, type SubscriberReply, type SubscriberRequest } from './e2e-lib.js';

const BUCKET_MS = 250;

let client: MqttClient | undefined;
let subscribed: string | undefined;
let since = 0;
let seen = new Set<string>();
let latencies: number[] = [];
let sentAt: number[] = [];
let duplicates = 0;
let stale = 0;
let foreign = 0;
let firstAt = 0;
let lastAt = 0;
let timeline: number[] = [];
const waiters = new Set<() => void>();

function reply(r: SubscriberReply): void {
  process.send?.(r);
}

function reset(from: number): void {
  since = from;
  seen = new Set();
  latencies = [];
  sentAt = [];
  duplicates = 0;
  stale = 0;
  foreign = 0;
  firstAt = 0;
  lastAt = 0;
  timeline = [];
}

interface Delivered {
  id?: unknown;
  device?: unknown;
  seq?: unknown;
  sent?: unknown;
  values?: { sent?: unknown };
}

function onMessage(payload: Buffer): void {
  const now = nowMs();
  let o: Delivered;
  try {
    o = JSON.parse(payload.toString('utf8')) as Delivered;
  } catch {
    foreign++;
    return;
  }
  const sent = o.values?.sent ?? o.sent;
  const dev = o.device ?? o.id;
  if (typeof sent !== 'number' || (typeof dev !== 'string' && typeof dev !== 'number') || typeof o.seq !== 'number') {
    foreign++;
    return;
  }
  if (sent < since) {
    stale++;
    return;
  }
  const key = `${dev}:${o.seq}`;
  if (seen.has(key)) {
    duplicates++;
    return;
  }
  seen.add(key);
  latencies.push(now - sent);
  sentAt.push(sent);
  if (firstAt === 0) firstAt = now;
  lastAt = now;
  const b = Math.floor((now - since) / BUCKET_MS);
  while (timeline.length <= b) timeline.push(0);
  timeline[b]!++;
  for (const w of waiters) w();
}

/** Median latency of the frames sent in the first and the last quarter of the span of send times. */
function trend(): { firstP50: number; lastP50: number } {
  if (sentAt.length === 0) return { firstP50: NaN, lastP50: NaN };
  let lo = Infinity;
  let hi = -Infinity;
  for (const t of sentAt) {
    if (t < lo) lo = t;
    if (t > hi) hi = t;
  }
  const q = (hi - lo) / 4;
  const first: number[] = [];
  const last: number[] = [];
  sentAt.forEach((t, i) => {
    if (t <= lo + q) first.push(latencies[i]!);
    if (t >= hi - q) last.push(latencies[i]!);
  });
  return { firstP50: percentiles(first).p50, lastP50: percentiles(last).p50 };
}

function stats(): SubscriberReply {
  return {
    t: 'stats',
    unique: seen.size,
    duplicates,
    stale,
    foreign,
    firstAt,
    lastAt,
    latency: percentiles(latencies),
    timeline,
    trend: trend(),
  };
}

function wait(expected: number, quietMs: number, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const end = nowMs() + timeoutMs;
    let lastCount = seen.size;
    let lastChange = nowMs();
    const check = () => {
      if (seen.size !== lastCount) {
        lastCount = seen.size;
        lastChange = nowMs();
      }
      if (seen.size >= expected || nowMs() - lastChange >= quietMs || nowMs() >= end) {
        clearInterval(timer);
        waiters.delete(onArrival);
        resolve();
      }
    };
    const onArrival = () => {
      if (seen.size >= expected) check();
    };
    const timer = setInterval(check, 50);
    waiters.add(onArrival);
    check();
  });
}

function subscribe(url: string, topic: string, clientId: string, clean: boolean): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const c = connect(url, { clientId, clean, keepalive: 30, reconnectPeriod: 100, connectTimeout: 10_000, protocolVersion: 4 });
    client = c;
    c.on('message', (_topic, payload) => onMessage(payload));
    c.on('error', () => undefined);
    c.once('connect', () => {
      subscribed = topic;
      c.subscribe(topic, { qos: 1 }, (err) => (err ? reject(err) : resolve()));
    });
  });
}

dieWithParent();
process.on('message', (m: SubscriberRequest) => {
  const fail = (e: unknown) => reply({ t: 'error', message: e instanceof Error ? e.message : String(e) });
  if (m.t === 'subscribe') subscribe(m.url, m.topic, m.clientId, m.clean).then(() => reply({ t: 'subscribed' }), fail);
  else if (m.t === 'reset') {
    reset(m.since);
    reply({ t: 'count', unique: 0, lastAt: 0 });
  } else if (m.t === 'wait') wait(m.expected, m.quietMs, m.timeoutMs).then(() => reply(stats()), fail);
  else if (m.t === 'count') reply({ t: 'count', unique: seen.size, lastAt });
  else if (m.t === 'close') {
    const c = client;
    client = undefined;
    if (!c) reply({ t: 'closed' });
    else
      c.unsubscribeAsync(subscribed ?? '#')
        .catch(() => undefined)
        .then(() => c.endAsync())
        .then(() => reply({ t: 'closed' }), fail);
  }
});
