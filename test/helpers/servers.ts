// Real local servers for black-box tests: an MQTT broker (aedes) and HTTP servers on free ports.
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { until } from './until.js';

export async function freePort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export interface HttpRecorder {
  readonly url: string;
  readonly requests: Array<{ method: string; url: string; headers: IncomingMessage['headers']; body: string; at: number }>;
  close(): Promise<void>;
}

/** An HTTP server that records each request and lets `answer` decide the response (default 200 ok). */
export async function httpRecorder(
  answer: (req: { method: string; url: string; headers: IncomingMessage['headers']; body: string }, res: ServerResponse) => void | Promise<void> = (_r, res) => {
    res.end('ok');
  },
): Promise<HttpRecorder> {
  const requests: HttpRecorder['requests'] = [];
  const server = createHttpServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      const r = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body, at: Date.now() };
      requests.push(r);
      Promise.resolve(answer(r, res)).catch(() => {
        res.statusCode = 500;
        res.end();
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A bare aedes broker on a free port (or the given one). */
export async function startAedes(port = 0): Promise<{ port: number; url: string; close(): Promise<void> }> {
  const broker = await Aedes.createBroker();
  const server = createNetServer(broker.handle);
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  const bound = (server.address() as AddressInfo).port;
  return {
    port: bound,
    url: `mqtt://127.0.0.1:${bound}`,
    close: async () => {
      await new Promise<void>((r) => broker.close(() => r()));
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

export interface Subscriber {
  readonly messages: Array<{ topic: string; payload: string; at: number }>;
  waitForCount(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function subscribe(url: string, filters: string[], login?: { username: string; password: string }): Promise<Subscriber> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, ...(login ?? {}) });
  const messages: Subscriber['messages'] = [];
  client.on('message', (topic, payload) => messages.push({ topic, payload: payload.toString('utf8'), at: Date.now() }));
  await client.subscribeAsync(filters, { qos: 1 });
  return {
    messages,
    waitForCount(n, timeoutMs = 15_000) {
      return until(() => messages.length >= n, { what: `${n} MQTT messages (got ${messages.length} so far)`, timeoutMs });
    },
    close: () => client.endAsync(),
  };
}
