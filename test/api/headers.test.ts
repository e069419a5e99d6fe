// Security headers on every answer of a real ApiServer (real HTTP): nosniff everywhere; a Content-Security-Policy and
// no framing on every HTML answer, whether the dashboard's index.html, an HTML file among its assets, or an HTML
// error page some plugin sends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dashboardRoutes } from '../../src/api/dashboard.js';
import { ApiServer, HTML_CSP } from '../../src/api/server.js';
import { silentLogger } from '../../src/core/logger.js';
import { tempDir } from '../helpers/context.js';

test('HTML answers carry the CSP, frame-ancestors none, X-Frame-Options and nosniff; JSON answers nosniff', async (t) => {
  const dir = tempDir('backhaul-headers-');
  t.after(() => dir.cleanup());
  mkdirSync(join(dir.path, 'assets'));
  writeFileSync(join(dir.path, 'index.html'), '<!doctype html><title>Backhaul</title><script type="module" src="/assets/app.js"></script>');
  writeFileSync(join(dir.path, 'assets', 'app.js'), 'console.log(1)');
  writeFileSync(join(dir.path, 'assets', 'help.html'), '<!doctype html><p>help</p>');
  const server = new ApiServer({
    host: '127.0.0.1',
    port: 0,
    logger: silentLogger(),
    plugins: [
      dashboardRoutes({ root: dir.path }),
      (app) => {
        app.get('/oops', (_req, reply) => reply.code(502).type('text/html; charset=utf-8').send('<h1>bad gateway</h1>'));
      },
    ],
  });
  await server.start();
  t.after(() => server.stop());

  for (const path of ['/', '/index.html', '/assets/help.html', '/oops']) {
    const res = await fetch(`${server.url}${path}`);
    await res.text();
    assert.match(res.headers.get('content-type') ?? '', /^text\/html/, path);
    const csp = res.headers.get('content-security-policy') ?? '';
    assert.equal(csp, HTML_CSP, path);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.match(csp, /script-src 'self'(;|$)/, 'no inline scripts');
    assert.equal(res.headers.get('x-frame-options'), 'DENY', path);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff', path);
  }
  const js = await fetch(`${server.url}/assets/app.js`);
  await js.text();
  assert.equal(js.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(js.headers.get('content-security-policy'), null, 'only HTML needs a policy');
  const missing = await fetch(`${server.url}/no/such/route`);
  assert.equal(missing.status, 404);
  assert.equal((await missing.json() as { error: { code: string } }).error.code, 'BH_API_NOT_FOUND');
  assert.equal(missing.headers.get('x-content-type-options'), 'nosniff');
});
