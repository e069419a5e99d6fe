// The error catalog's shape: every code has a description and an HTTP status, and the errors the parts throw for
// their own reasons (a sink's failure, a closed outbox, a wrong command line) are coded like the rest.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BackhaulError, ERROR_CATALOG, errorBody, errorDescription, errorText, httpStatus, type ErrorCode } from '../../src/core/errors.js';
import { SinkError } from '../../src/core/driver.js';
import { OutboxClosedError } from '../../src/outbox/outbox.js';
import { UsageError } from '../../src/cli/io.js';

test('every code has a description and an HTTP error status', () => {
  const codes = Object.keys(ERROR_CATALOG) as ErrorCode[];
  assert.ok(codes.length > 60);
  for (const code of codes) {
    assert.match(code, /^BH_[A-Z0-9_]+$/);
    const s = httpStatus(code);
    assert.ok(Number.isInteger(s) && s >= 400 && s <= 599, `${code}: status ${s}`);
    assert.ok(errorDescription(code).length > 20, `${code} is described`);
  }
  // The statuses the API's answers are known by (docs/api.md).
  assert.equal(httpStatus('BH_DEVICE_NOT_FOUND'), 404);
  assert.equal(httpStatus('BH_DEVICE_EXISTS'), 409);
  assert.equal(httpStatus('BH_API_UNAUTHENTICATED'), 401);
  assert.equal(httpStatus('BH_API_RATE_LIMITED'), 429);
  assert.equal(httpStatus('BH_DECODE_SYNTAX'), 400);
  assert.equal(httpStatus('BH_OUTBOX_CLOSED'), 503);
});

test('sink, outbox and usage errors are coded errors', () => {
  const retry = new SinkError('broker away', true);
  assert.ok(retry instanceof BackhaulError);
  assert.equal(retry.code, 'BH_SINK_WRITE');
  assert.equal(retry.retryable, true);
  assert.equal(retry.toString(), 'BH_SINK_WRITE broker away');
  const fatal = new SinkError('login refused', false);
  assert.equal(fatal.code, 'BH_SINK_FATAL');
  assert.equal(new SinkError('no file', true, { code: 'BH_SINK_OPEN' }).code, 'BH_SINK_OPEN');
  const closed = new OutboxClosedError();
  assert.ok(closed instanceof BackhaulError);
  assert.equal(closed.code, 'BH_OUTBOX_CLOSED');
  const usage = new UsageError('list takes no arguments');
  assert.equal(usage.code, 'BH_USAGE');
  assert.equal(usage.message, 'list takes no arguments');
});

test('errorText follows a cause one level and names its errno code', () => {
  const cause = Object.assign(new Error('connect refused 127.0.0.1:9'), { code: 'ECONNREFUSED' });
  assert.equal(errorText(new Error('fetch failed', { cause })), 'fetch failed: ECONNREFUSED connect refused 127.0.0.1:9');
  assert.equal(errorText(new Error('plain')), 'plain');
  assert.equal(errorText('a string'), 'a string');
  assert.deepEqual(errorBody('BH_API_REQUEST', 'bad', 'body.x'), { error: { code: 'BH_API_REQUEST', message: 'bad', path: 'body.x' } });
  assert.deepEqual(errorBody('BH_API_REQUEST', 'bad'), { error: { code: 'BH_API_REQUEST', message: 'bad' } });
});
