import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { appendFileSync, openSync, closeSync, writeSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { linesInput } from '../../src/inputs/lines/index.js';
import { LineSplitter } from '../../src/inputs/lines/split.js';
import { BackhaulError } from '../../src/core/errors.js';
import type { Frame } from '../../src/core/types.js';
import { inputContext, tempDir } from '../helpers/context.js';
import { until } from '../helpers/until.js';

const DEFAULTS = { maxLineBytes: 65536, follow: false, reopen: true, reopenMs: 5000, pollMs: 1000 };

const lines = (frames: Frame[]) => frames.map((f) => f.payload);

test('LineSplitter: lines across chunks, CR stripped, long lines dropped without buffering them', () => {
  const s = new LineSplitter(8);
  const out = [...s.push(Buffer.from('ab')), ...s.push(Buffer.from('c\r\n12345678\r\n')), ...s.push(Buffer.from('123456789\nxy\n\n'))];
  assert.deepEqual(out, [{ line: 'abc' }, { line: '12345678' }, { tooLong: 9 }, { line: 'xy' }]);
  const t = new LineSplitter(4);
  assert.deepEqual([...t.push(Buffer.from('0123456789')), ...t.push(Buffer.from('abcdef\nok'))], [{ tooLong: 16 }]);
  assert.deepEqual(t.flush(), { line: 'ok' });
  assert.equal(t.flush(), undefined);
});

test('lines: a regular file gives one frame per line, CRLF stripped, an overlong line dropped and counted', async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const file = join(dir.path, 'capture.txt');
  const long = 'x'.repeat(200);
  writeFileSync(file, `{"@":"0a45","T|C16":331}\r\n${long}\r\n\r\n@D49;T17C6\nlast line without newline`);
  const ctx = inputContext({ id: 'replay', dataDir: dir.path });
  const input = linesInput.create({ ...DEFAULTS, path: 'capture.txt', maxLineBytes: 100 }, ctx);
  await input.start();
  await input.done();
  assert.deepEqual(lines(ctx.frames), ['{"@":"0a45","T|C16":331}', '@D49;T17C6', 'last line without newline']);
  const f = ctx.frames[0];
  assert.equal(f?.input, 'replay');
  assert.equal(f?.topic, undefined);
  assert.equal(typeof f?.receivedAt, 'number');
  assert.equal(await ctx.metrics.value('backhaul_input_errors_total', { input: 'replay' }), 1);
  assert.deepEqual(input.info?.(), { path: 'capture.txt' });
  await input.stop();
});

test('lines: at most a window of 256 lines is in the data path; emits are made in order', async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const file = join(dir.path, 'many.txt');
  const N = 1000;
  writeFileSync(file, Array.from({ length: N }, (_, i) => `line ${i}`).join('\n') + '\n');
  const base = inputContext({ dataDir: dir.path });
  const called: string[] = [];
  const gates: Array<() => void> = [];
  const ctx = {
    ...base,
    // A data path that holds every frame until the test lets it go.
    emit: (f: Frame) => {
      called.push(String(f.payload));
      return new Promise<void>((resolve) => gates.push(resolve));
    },
  };
  const input = linesInput.create({ ...DEFAULTS, path: file }, ctx);
  await input.start();
  await until(() => called.length === 256, { what: 'called.length === 256' });
  await delay(50);
  assert.equal(called.length, 256, 'the reader waits while 256 lines are unacknowledged');
  gates.splice(0, 10).forEach((g) => g());
  await until(() => called.length === 266, { what: 'called.length === 266' });
  let finished = false;
  void input.done().then(() => (finished = true));
  while (called.length < N || gates.length > 0) {
    gates.splice(0).forEach((g) => g());
    await delay(1);
  }
  await input.done();
  assert.ok(finished);
  assert.deepEqual(called, Array.from({ length: N }, (_, i) => `line ${i}`));
});

test('lines: follow reads lines appended later', async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const file = join(dir.path, 'log.txt');
  writeFileSync(file, 'one\n');
  const ctx = inputContext({ dataDir: dir.path });
  const input = linesInput.create({ ...DEFAULTS, path: file, follow: true, pollMs: 20 }, ctx);
  await input.start();
  t.after(() => input.stop());
  await until(() => ctx.frames.length === 1, { what: 'ctx.frames.length === 1' });
  appendFileSync(file, 'two\nthr');
  await until(() => ctx.frames.length === 2, { what: 'ctx.frames.length === 2' });
  appendFileSync(file, 'ee\n');
  await until(() => ctx.frames.length === 3, { what: 'ctx.frames.length === 3' });
  assert.deepEqual(lines(ctx.frames), ['one', 'two', 'three']);
  await input.stop();
  await input.done();
});

test('lines: a missing file makes start() reject with BH_INPUT_FAILED and the path', async () => {
  const ctx = inputContext({ id: 'radio' });
  const input = linesInput.create({ ...DEFAULTS, path: '/nonexistent/backhaul.txt' }, ctx);
  await assert.rejects(input.start(), (err: unknown) => {
    assert.ok(err instanceof BackhaulError);
    assert.equal(err.code, 'BH_INPUT_FAILED');
    assert.equal(err.path, 'inputs.radio.path');
    return true;
  });
});

test('lines: a FIFO gives lines as they are written, and is reopened when the writer closes', async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const fifo = join(dir.path, 'radio.fifo');
  execFileSync('mkfifo', [fifo]);
  const ctx = inputContext({ dataDir: dir.path });
  const input = linesInput.create({ ...DEFAULTS, path: fifo }, ctx);
  await input.start(); // does not wait for a writer
  t.after(() => input.stop());

  const w1 = openSync(fifo, 'w');
  writeSync(w1, 'first\r\n');
  await until(() => ctx.frames.length === 1, { what: 'ctx.frames.length === 1' });
  writeSync(w1, 'second\npart');
  await until(() => ctx.frames.length === 2, { what: 'ctx.frames.length === 2' });
  closeSync(w1); // the receiver process exits: its unterminated line is complete
  await until(() => ctx.frames.length === 3, { what: 'ctx.frames.length === 3' });

  await delay(50);
  const w2 = openSync(fifo, 'w'); // the receiver restarts
  writeSync(w2, 'after restart\n');
  await until(() => ctx.frames.length === 4, { what: 'ctx.frames.length === 4' });
  closeSync(w2);
  assert.deepEqual(lines(ctx.frames), ['first', 'second', 'part', 'after restart']);
  await input.stop();
  await input.done();
});

test('lines: a FIFO with reopen false is done when its writer closes', async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const fifo = join(dir.path, 'once.fifo');
  execFileSync('mkfifo', [fifo]);
  const ctx = inputContext({ dataDir: dir.path });
  const input = linesInput.create({ ...DEFAULTS, path: fifo, reopen: false }, ctx);
  await input.start();
  const w = openSync(fifo, 'w');
  writeSync(w, 'a\nb\n');
  closeSync(w);
  await input.done();
  assert.deepEqual(lines(ctx.frames), ['a', 'b']);
  await input.stop();
});

test('lines: stdin (path "-") is read to its end', async () => {
  // Run in a child process whose stdin the test writes to; the child prints the frames it got.
  const here = new URL('.', import.meta.url);
  const script = `
    const { linesInput } = await import(${JSON.stringify(new URL('../../src/inputs/lines/index.js', here).href)});
    const { inputContext } = await import(${JSON.stringify(new URL('../helpers/context.js', here).href)});
    const ctx = inputContext();
    const input = linesInput.create({ path: '-', maxLineBytes: 100, follow: false, reopen: true, reopenMs: 5000, pollMs: 1000 }, ctx);
    await input.start();
    await input.done();
    console.log(JSON.stringify(ctx.frames.map((f) => f.payload)));
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stdin.write('alpha\r\nbeta\n');
  child.stdin.end('gamma');
  const code = await new Promise((r) => child.once('exit', r));
  assert.equal(code, 0);
  assert.deepEqual(JSON.parse(out), ['alpha', 'beta', 'gamma']);
});

// A real pseudo-terminal: python3 opens a pty pair, prints the slave's path, and writes lines to the master.
const PTY_SCRIPT = `
import os, pty, sys, time
m, s = pty.openpty()
print(os.ttyname(s), flush=True)
sys.stdin.readline()
for i in range(3):
    os.write(m, ('{"@":"819c","+":%d}\\r\\n' % i).encode())
    time.sleep(0.05)
sys.stdin.readline()
`;

let ptySkip: string | false = false;
try {
  execFileSync('python3', ['-c', 'import pty']);
} catch {
  ptySkip = 'needs python3 with the pty module to make a pseudo-terminal';
}

test('lines: a serial port (a pseudo-terminal opened through serialport)', { skip: ptySkip }, async (t) => {
  const py = spawn('python3', ['-c', PTY_SCRIPT], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.after(() => py.kill());
  const slave = await new Promise<string>((resolve, reject) => {
    py.stdout.once('data', (d: Buffer) => resolve(d.toString().trim()));
    py.once('error', reject);
  });
  const ctx = inputContext({ id: 'radio' });
  const input = linesInput.create({ ...DEFAULTS, path: slave, baud: 4800, reopenMs: 50 }, ctx);
  try {
    await input.start();
  } catch (err) {
    t.skip(`serialport cannot open the pty ${slave}: ${String(err)}`);
    return;
  }
  t.after(() => input.stop());
  py.stdin.write('go\n');
  await until(() => ctx.frames.length === 3, { what: 'ctx.frames.length === 3' });
  assert.deepEqual(lines(ctx.frames), ['{"@":"819c","+":0}', '{"@":"819c","+":1}', '{"@":"819c","+":2}']);
  assert.deepEqual(input.info?.(), { path: slave });
  // unplug: the pty goes away; the input logs, counts and keeps retrying until stopped
  py.stdin.end('bye\n');
  await new Promise((r) => py.once('exit', r));
  await until(async () => (await ctx.metrics.value('backhaul_input_errors_total', { input: 'radio' })) >= 1, { what: 'the lost serial port counted' });
  await input.stop();
  await input.done();
});
