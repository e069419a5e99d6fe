import { test } from 'node:test';
import { createWithDefaults } from '../helpers/options.js';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SinkError } from '../../src/core/driver.js';
import { emoncmsSink } from '../../src/sinks/emoncms/index.js';
import { freePort } from '../helpers/servers.js';
import { offline, reading, T0, valve, sinkContext } from './messages.js';

const KEY = 'b7f0c1d2e3f4a5b6c7d8e9f0a1b2c3d4';

/** What the fake stored: one entry per node per post/bulk row, as emoncms's process_node receives it. */
interface Stored {
  node: string;
  time: number;
  inputs: Record<string, number>;
}

/**
 * A fake emoncms following Modules/input (input_controller.php, input_methods.php) and index.php: the apikey from
 * `apikey=` (query, then form) or `Authorization: Bearer`, 401 "Invalid API key" for a wrong one; input/post with node
 * (field or path segment), fulljson/json/csv, time; input/bulk with data rows, time/sentat/offset; names cleaned.
 */
async function fakeEmoncms(base: string, opts: { status?: number; refuseNodes?: string[] } = {}) {
  const stored: Stored[] = [];
  const requests: Array<{ path: string; keyFrom: string; params: Record<string, string> }> = [];
  const clean = (s: string) => s.replace(/[^\p{N}\p{L}_\s\-.]/gu, '');
  const now = () => Math.floor(Date.now() / 1000);

  function processNode(node: string, time: number, inputs: Record<string, number>): true | string {
    if (opts.refuseNodes?.includes(node)) return 'Error: Node limit reached';
    stored.push({ node, time, inputs });
    return true;
  }

  function post(params: Record<string, string>, sub: string | undefined): string {
    const node = clean(sub ?? params['node'] ?? '0');
    const time = params['time'] !== undefined ? Math.trunc(Number(params['time'])) : now();
    const datain = params['json'] ?? params['fulljson'] ?? params['csv'] ?? params['data'] ?? '';
    if (datain === '') return 'Request contains no data via csv, json or data tag';
    let inputs: Record<string, number> = {};
    if (params['fulljson'] !== undefined) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(datain);
      } catch {
        return 'Error decoding JSON string (invalid or too deeply nested)';
      }
      if (typeof parsed !== 'object' || parsed === null) return 'Input must be a JSON object';
      for (const [k, v] of Object.entries(parsed)) inputs[k] = Number(v);
    } else {
      inputs = {};
      let i = 0;
      for (const pair of datain.split(',')) {
        const [k, v] = pair.split(':');
        if (v !== undefined) inputs[k ?? ''] = Number(v);
        else inputs[String(++i)] = Number(k);
      }
    }
    const r = processNode(node, time, inputs);
    return r === true ? 'ok' : r;
  }

  function bulk(params: Record<string, string>): string {
    let data: unknown;
    try {
      data = JSON.parse(params['data'] ?? '');
    } catch {
      data = [];
    }
    if (!Array.isArray(data) || data.length === 0) return 'Format error, json string supplied is not valid';
    const rows = data as unknown[][];
    const last = rows[rows.length - 1];
    if (!Array.isArray(last) || last[0] === undefined) return 'Format error, last item in bulk data does not contain any data';
    let ref: number;
    if (params['sentat'] !== undefined) ref = now() - Math.trunc(Number(params['sentat']));
    else if (params['offset'] !== undefined) ref = now() - Math.trunc(Number(params['offset']));
    else if (params['time'] !== undefined) ref = Math.trunc(Number(params['time']));
    else ref = now() - Math.trunc(Number(last[0]));
    for (const item of rows) {
      if (item.length <= 2) continue;
      const time = ref + Math.trunc(Number(item[0]));
      const rawNode = item[1];
      if (typeof rawNode !== 'string' && typeof rawNode !== 'number') return 'Format error, node must not be an object';
      const node = String(rawNode);
      const inputs: Record<string, number> = {};
      let name = 1;
      for (const v of item.slice(2)) {
        if (typeof v === 'object' && v !== null) {
          const [k, val] = Object.entries(v as Record<string, unknown>)[0] ?? ['', 0];
          inputs[k] = Number(val);
          continue;
        }
        if (typeof v === 'number' || (typeof v === 'string' && v.length > 0)) inputs[String(name)] = Number(v);
        name++;
      }
      const r = processNode(node, time, inputs);
      if (r !== true) return r;
    }
    return 'ok';
  }

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      const get = Object.fromEntries(url.searchParams);
      const form = req.headers['content-type']?.startsWith('application/x-www-form-urlencoded') ? Object.fromEntries(new URLSearchParams(body)) : {};
      const auth = req.headers['authorization'];
      const [key, keyFrom] =
        get['apikey'] !== undefined
          ? [get['apikey'], 'query']
          : form['apikey'] !== undefined
            ? [form['apikey'], 'form']
            : auth !== undefined
              ? [auth.replace('Bearer ', ''), 'bearer']
              : [undefined, 'none'];
      const params = { ...form, ...get };
      requests.push({ path: url.pathname, keyFrom, params });
      if (opts.status) {
        res.statusCode = opts.status;
        res.end('Service Unavailable');
        return;
      }
      if (key !== undefined && key !== KEY) {
        res.statusCode = 401;
        res.setHeader('WWW-Authenticate', 'Bearer realm="API KEY", error="invalid_apikey", error_description="Invalid API key"');
        res.end('Invalid API key');
        return;
      }
      const m = url.pathname.match(new RegExp(`^${base}/input/(post|bulk)(?:\\.json)?(?:/([^/]+))?$`));
      if (!m) {
        res.statusCode = 406;
        res.end(JSON.stringify({ success: false, message: '406 Not Acceptable. Route not found' }));
        return;
      }
      res.setHeader('Content-Type', 'text/plain');
      if (key === undefined) {
        res.end('<!doctype html><html><body>Login</body></html>');
        return;
      }
      const result = m[1] === 'post' ? post(params, m[2]) : bulk(params);
      if (result === 'ok') res.end(params['fulljson'] !== undefined ? '{"success": true}' : 'ok');
      else res.end(`{"success": false, "message": "${result.replace(/"/g, "'")}"}`);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}${base}`,
    stored,
    requests,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const secs = (ms: number) => Math.floor(ms / 1000);

test('emoncms post: one input/post per reading, node from the device or the nodes map, numbers only, Bearer key', async () => {
  const emon = await fakeEmoncms('/emoncms');
  try {
    const sink = createWithDefaults(emoncmsSink, { url: `${emon.url}/`, apikey: KEY, nodes: { b39a: 17, 'x y': 'Living room!' } }, sinkContext());
    await sink.open();
    const res = await sink.write([
      valve,
      offline, // events are accepted and ignored
      reading('b39a', T0 + 1500, { 'temp (room)': 19.5, 'power/W': 230 }),
      reading('x y', T0 + 2000, { label: 'only text' }), // nothing numeric: nothing sent
      reading('x y', T0 + 3000, { 'v%': 40 }),
    ]);
    assert.equal(res, undefined);
    await sink.close();
    assert.deepEqual(emon.stored, [
      { node: '819c', time: secs(T0), inputs: { temperature: 16.625, battery: 2.55, occupancy: 2, boiler: 1 } },
      { node: '17', time: secs(T0 + 1500), inputs: { 'temp room': 19.5, powerW: 230 } },
      { node: 'Living room', time: secs(T0 + 3000), inputs: { v: 40 } },
    ]);
    assert.deepEqual(
      emon.requests.map((r) => [r.path, r.keyFrom]),
      [
        ['/emoncms/input/post', 'bearer'],
        ['/emoncms/input/post', 'bearer'],
        ['/emoncms/input/post', 'bearer'],
      ],
    );
    assert.ok(emon.requests.every((r) => r.params['fulljson'] !== undefined && r.params['apikey'] === undefined));
  } finally {
    await emon.close();
  }
});

test('emoncms post: a refused node rejects only its readings; the others are delivered', async () => {
  const emon = await fakeEmoncms('', { refuseNodes: ['bad'] });
  try {
    const sink = createWithDefaults(emoncmsSink, { url: emon.url, apikey: KEY }, sinkContext());
    await sink.open();
    const res = await sink.write([reading('good', T0, { a: 1 }), reading('bad', T0, { a: 2 }), reading('good', T0 + 1000, { a: 3 })]);
    await sink.close();
    assert.deepEqual(
      res?.rejected?.map((r) => [r.index, r.error.code]),
      [[1, 'BH_SINK_REJECTED']],
    );
    assert.match(res?.rejected?.[0]?.error.message ?? '', /Node limit reached/);
    assert.deepEqual(
      emon.stored.map((s) => [s.node, s.inputs['a']]),
      [
        ['good', 1],
        ['good', 3],
      ],
    );
  } finally {
    await emon.close();
  }
});

test('emoncms bulk: one input/bulk per batch, named values by default, bulkColumns positional', async () => {
  const emon = await fakeEmoncms('/emon');
  try {
    const batch = [
      reading('819c', T0, { temperature: 16.5, battery: 2.5 }),
      offline,
      reading('b39a', T0 + 2000, { temperature: 19, light: 31 }),
      reading('819c', T0 + 4000, { battery: 2.4, status: 'low' }),
    ];
    const named = createWithDefaults(emoncmsSink, { url: emon.url, apikey: KEY, mode: 'bulk' }, sinkContext());
    await named.open();
    assert.equal(await named.write(batch), undefined);
    await named.close();
    assert.equal(emon.requests.length, 1);
    assert.equal(emon.requests[0]?.path, '/emon/input/bulk');
    assert.equal(emon.requests[0]?.params['time'], String(secs(T0)));
    assert.deepEqual(emon.stored, [
      { node: '819c', time: secs(T0), inputs: { temperature: 16.5, battery: 2.5 } },
      { node: 'b39a', time: secs(T0) + 2, inputs: { temperature: 19, light: 31 } },
      { node: '819c', time: secs(T0) + 4, inputs: { battery: 2.4 } },
    ]);

    emon.stored.length = 0;
    const positional = createWithDefaults(emoncmsSink, 
      { url: emon.url, apikey: KEY, mode: 'bulk', bulkColumns: ['temperature', 'battery'], nodes: { '819c': 5, b39a: 6 } },
      sinkContext(),
    );
    await positional.open();
    await positional.write(batch);
    await positional.close();
    assert.deepEqual(JSON.parse(emon.requests[1]?.params['data'] ?? ''), [
      [0, 5, 16.5, 2.5],
      [2, 6, 19, { light: 31 }],
      [4, 5, '', 2.4],
    ]);
    assert.deepEqual(emon.stored, [
      { node: '5', time: secs(T0), inputs: { 1: 16.5, 2: 2.5 } },
      { node: '6', time: secs(T0) + 2, inputs: { 1: 19, light: 31 } },
      { node: '5', time: secs(T0) + 4, inputs: { 2: 2.4 } },
    ]);
  } finally {
    await emon.close();
  }
});

test('emoncms bulk: a refusal rejects the items of the upload', async () => {
  const emon = await fakeEmoncms('', { refuseNodes: ['bad'] });
  try {
    const sink = createWithDefaults(emoncmsSink, { url: emon.url, apikey: KEY, mode: 'bulk' }, sinkContext());
    await sink.open();
    const res = await sink.write([reading('bad', T0, { a: 1 }), offline, reading('ok', T0, { a: 1 })]);
    await sink.close();
    assert.deepEqual(
      res?.rejected?.map((r) => r.index),
      [0, 2],
    );
    assert.match(res?.rejected?.[0]?.error.message ?? '', /refused the bulk upload: Error: Node limit reached/);
  } finally {
    await emon.close();
  }
});

test('emoncms: a wrong key stops the sink, 5xx and an unreachable server are retryable, a wrong base url is not', async () => {
  const emon = await fakeEmoncms('');
  const down = await fakeEmoncms('', { status: 503 });
  try {
    const check = (retryable: boolean, re: RegExp) => (e: unknown) => {
      assert.ok(e instanceof SinkError);
      assert.equal(e.retryable, retryable, e.message);
      assert.match(e.message, re);
      assert.ok(!e.message.includes(KEY) && !e.message.includes('wrongkey'), 'the API key leaked into an error');
      return true;
    };
    const wrong = createWithDefaults(emoncmsSink, { url: emon.url, apikey: 'wrongkey-0000' }, sinkContext());
    await wrong.open();
    await assert.rejects(wrong.write([valve]), check(false, /refused the API key \(HTTP 401: Invalid API key\)/));
    await wrong.close();

    const badBase = createWithDefaults(emoncmsSink, { url: `${emon.url}/nothere`, apikey: KEY }, sinkContext());
    await badBase.open();
    await assert.rejects(badBase.write([valve]), check(false, /406/));
    await badBase.close();

    const five = createWithDefaults(emoncmsSink, { url: down.url, apikey: KEY, mode: 'bulk' }, sinkContext());
    await five.open();
    await assert.rejects(five.write([valve]), check(true, /503/));
    await five.close();

    const port = await freePort();
    const gone = createWithDefaults(emoncmsSink, { url: `http://127.0.0.1:${port}`, apikey: KEY }, sinkContext());
    await gone.open();
    await assert.rejects(gone.write([valve]), check(true, /cannot reach/));
    await gone.close();
    assert.equal(emon.stored.length, 0);
  } finally {
    await emon.close();
    await down.close();
  }
});
