// The API's JSON body parser (src/api/server.ts): nesting bounded before parsing (issue 11, item 9), Fastify's own
// checks kept. A real ApiServer on a free port, real HTTP.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiServer } from '../../src/api/server.js';
import { silentLogger } from '../../src/core/logger.js';

test('API JSON bodies: nested deeper than 64 levels is 400 BH_DECODE_DEPTH at `body`; bodies within it parse as before', async (t) => {
  const server = new ApiServer({
    host: '127.0.0.1',
    port: 0,
    logger: silentLogger(),
    plugins: [
      (app) => {
        app.post('/echo', (req) => ({ got: req.body }));
      },
    ],
  });
  await server.start();
  t.after(() => server.stop());
  const post = async (body: string) => {
    const res = await fetch(`${server.url}/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  const deep = await post(`${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}`);
  assert.equal(deep.status, 400);
  const err = deep.body['error'] as { code: string; message: string; path: string };
  assert.equal(err.code, 'BH_DECODE_DEPTH');
  assert.equal(err.path, 'body');
  assert.match(err.message, /deeper than 64 levels/);

  // 64 levels are fine; brackets inside strings do not count.
  const at64 = `${'['.repeat(64)}${']'.repeat(64)}`;
  assert.equal((await post(at64)).status, 200);
  assert.equal((await post(`${'['.repeat(65)}${']'.repeat(65)}`)).status, 400);
  assert.deepEqual(await post(JSON.stringify({ s: '[[[[{{{{"\\'.repeat(100) })), { status: 200, body: { got: { s: '[[[[{{{{"\\'.repeat(100) } } });

  // What Fastify's parser refused before it still refuses.
  assert.equal((await post('{"__proto__": {"admin": true}}')).status, 400);
  assert.equal((await post('{"a": ')).status, 400);
});
