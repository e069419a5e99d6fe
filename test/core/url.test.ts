// safeUrl: what a log line, an error or `backhaul status` may say of a URL.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { safeUrl } from '../../src/core/url.js';

test('safeUrl keeps where and drops who: user info, path and query go', () => {
  assert.equal(safeUrl('mqtt://bob:hunter22@broker.lan:1883'), 'mqtt://broker.lan:1883');
  assert.equal(safeUrl('mqtts://broker.example.org'), 'mqtts://broker.example.org');
  assert.equal(safeUrl('https://emon.example.org/input/bulk.json?apikey=s3cret'), 'https://emon.example.org');
  assert.equal(safeUrl(new URL('http://u:p@[::1]:8080/x')), 'http://[::1]:8080');
  assert.equal(safeUrl('not a url'), '(invalid URL)');
});
