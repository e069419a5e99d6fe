import { test } from 'node:test';
import { createWithDefaults } from '../helpers/options.js';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileSink } from '../../src/sinks/file/index.js';
import { messageToJson } from '../../src/sinks/format.js';
import { driverContext, tempDir } from '../helpers/context.js';
import { offline, reading, T0, valve } from './messages.js';

function lines(path: string): unknown[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as unknown);
}

test('file sink: default path in the data folder, one JSON object per line, appends across reopen', async () => {
  const dir = tempDir();
  try {
    const ctx = driverContext({ dataDir: dir.path });
    const sink = createWithDefaults(fileSink, {}, ctx);
    await sink.open();
    await sink.write([valve, offline]);
    await sink.close();
    const again = createWithDefaults(fileSink, {}, ctx);
    await again.open();
    await again.write([reading('b39a', T0 + 5, { light: 31 })]);
    await again.close();
    const got = lines(join(dir.path, 'readings.jsonl'));
    assert.deepEqual(got, [messageToJson(valve), messageToJson(offline), messageToJson(reading('b39a', T0 + 5, { light: 31 }))]);
  } finally {
    dir.cleanup();
  }
});

test('file sink: creates a missing folder for a relative path', async () => {
  const dir = tempDir();
  try {
    const sink = createWithDefaults(fileSink, { path: 'logs/deep/out.jsonl' }, driverContext({ dataDir: dir.path }));
    await sink.open();
    await sink.write([valve]);
    await sink.close();
    assert.deepEqual(lines(join(dir.path, 'logs/deep/out.jsonl')), [messageToJson(valve)]);
  } finally {
    dir.cleanup();
  }
});

test('file sink: rotates before exceeding maxBytes and keeps maxFiles', async () => {
  const dir = tempDir();
  try {
    const path = join(dir.path, 'r.jsonl');
    const sink = createWithDefaults(fileSink, { path, maxBytes: 1024, maxFiles: 2 }, driverContext({ dataDir: dir.path }));
    await sink.open();
    // each batch is 3 lines of ~290 bytes (under 1 KiB), and two batches do not fit in one file: every batch rotates
    const written: number[] = [];
    let n = 0;
    for (let b = 0; b < 5; b++) {
      const batch = Array.from({ length: 3 }, () => reading('dev', T0 + n, { n: n++, padding: 'x'.repeat(150) }));
      await sink.write(batch);
      written.push(...batch.map((r) => r.values['n'] as number));
    }
    await sink.close();
    const files = readdirSync(dir.path).sort();
    assert.deepEqual(files, ['r.jsonl', 'r.jsonl.1', 'r.jsonl.2']);
    // newest in r.jsonl, then .1, then .2; the two oldest batches are gone
    const ns = (f: string) => lines(join(dir.path, f)).map((o) => (o as { values: { n: number } }).values.n);
    assert.deepEqual(ns('r.jsonl'), [12, 13, 14]);
    assert.deepEqual(ns('r.jsonl.1'), [9, 10, 11]);
    assert.deepEqual(ns('r.jsonl.2'), [6, 7, 8]);
    for (const f of files) assert.ok(statSync(join(dir.path, f)).size <= 1024, `${f} exceeds maxBytes`);
    assert.equal(existsSync(join(dir.path, 'r.jsonl.3')), false);
  } finally {
    dir.cleanup();
  }
});

test('file sink: small batches share a file until the next would exceed maxBytes', async () => {
  const dir = tempDir();
  try {
    const path = join(dir.path, 's.jsonl');
    const sink = createWithDefaults(fileSink, { path, maxBytes: 1024, maxFiles: 5 }, driverContext({ dataDir: dir.path }));
    await sink.open();
    for (let i = 0; i < 20; i++) await sink.write([reading('d', T0 + i, { i })]);
    await sink.close();
    const all: number[] = [];
    const files = readdirSync(dir.path)
      .sort()
      .reverse(); // s.jsonl.2, s.jsonl.1, s.jsonl: oldest first
    assert.ok(files.length >= 3, `expected rotation, got ${files.join(' ')}`);
    for (const f of files) {
      assert.ok(statSync(join(dir.path, f)).size <= 1024);
      all.push(...lines(join(dir.path, f)).map((o) => (o as { values: { i: number } }).values.i));
    }
    assert.deepEqual(all, Array.from({ length: 20 }, (_, i) => i));
  } finally {
    dir.cleanup();
  }
});
