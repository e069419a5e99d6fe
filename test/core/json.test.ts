// The shared JSON bounds check (src/core/json.ts): one pass, brackets and colons inside strings ignored.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkJsonBounds, jsonBoundsProblem } from '../../src/core/json.js';
import { throwsCode } from '../helpers/assert.js';

test('depth: exactly the limit passes, one more is refused at the bracket that goes too deep', () => {
  assert.equal(jsonBoundsProblem('[[[]]]', 3), undefined);
  assert.deepEqual(jsonBoundsProblem('[[[[]]]]', 3), { kind: 'depth', at: 3 });
  assert.deepEqual(jsonBoundsProblem('{"a":{"b":[{"c":1}]}}', 3), { kind: 'depth', at: 11 });
  // Siblings do not add up: depth is nesting, not count.
  assert.equal(jsonBoundsProblem(`[${'[],'.repeat(1000)}[]]`, 2), undefined);
});

test('strings: brackets, colons, escaped quotes and backslashes inside them count for nothing', () => {
  assert.equal(jsonBoundsProblem(JSON.stringify({ s: '[[[[{{{{::::' }), 1, 1), undefined);
  assert.equal(jsonBoundsProblem(JSON.stringify(['\\"[[[', '\\', '"{']), 1), undefined);
  assert.deepEqual(jsonBoundsProblem(`${JSON.stringify('\\"')}[[`, 1), { kind: 'depth', at: 7 });
});

test('members: counted per object (an inner object has its own count), arrays not counted', () => {
  assert.equal(jsonBoundsProblem('{"a":1,"b":2}', 64, 2), undefined);
  assert.deepEqual(jsonBoundsProblem('{"a":1,"b":2,"c":3}', 64, 2), { kind: 'members', at: 16 });
  assert.equal(jsonBoundsProblem('{"a":{"x":1,"y":2},"b":{"x":1,"y":2}}', 64, 2), undefined);
  assert.equal(jsonBoundsProblem(`[${'1,'.repeat(50)}1]`, 64, 2), undefined);
});

test('checkJsonBounds names the limit, the place and the document; the defaults are 64 levels and 10,000 members', () => {
  const deep = throwsCode(() => checkJsonBounds(`${'['.repeat(65)}${']'.repeat(65)}`, 'the status'), 'BH_DECODE_DEPTH', '$');
  assert.equal(deep.detail, 'the status nests arrays and objects deeper than 64 levels (at character 64); refused unparsed');
  checkJsonBounds(`${'['.repeat(64)}${']'.repeat(64)}`);
  const wide = JSON.stringify(Object.fromEntries(Array.from({ length: 10_001 }, (_, i) => [`k${i}`, i])));
  assert.match(throwsCode(() => checkJsonBounds(wide), 'BH_DECODE_TOO_MANY', '$').detail, /more than 10000 members/);
  checkJsonBounds(JSON.stringify(Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`k${i}`, i]))));
});
