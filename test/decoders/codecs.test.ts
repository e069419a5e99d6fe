// Vendor payload codecs in their sandbox (QuickJS in WebAssembly): the three codecs of test/fixtures/codecs (written
// for these tests in the device-repository format) decode and encode; hostile codecs (an endless loop, a huge
// allocation, deep recursion, reaching for the host's process/require/globalThis, polluting prototypes, returning
// what is not JSON) are contained: a coded error for that call, the codec still usable, the host unharmed.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { QuickJSWASMModule } from 'quickjs-emscripten-core';
import { Codec, loadCodecEngine } from '../../src/decoders/codecs.js';
import { fixture } from '../helpers/fixtures.js';
import { throwsCode } from '../helpers/assert.js';
import { tempDir } from '../helpers/context.js';
import { runToEnd } from '../helpers/process.js';

let engine: QuickJSWASMModule;
before(async () => {
  engine = await loadCodecEngine();
});

const codec = (name: string, source: string, limits = {}) => new Codec(engine, name, source, limits);
const fromFile = (name: string) => codec(name, readFileSync(fixture(`codecs/${name}.js`), 'utf8'));

test('the test codecs decode uplinks and encode downlinks in the device-repository shape', () => {
  const env = fromFile('env-sensor');
  try {
    assert.deepEqual(env.decodeUplink({ fPort: 1, bytes: [0x08, 0x66, 0x5a, 0x0b, 0xc4] }), { data: { temperature: 21.5, humidity: 45, battery: 3.012 }, warnings: [] });
    const e = throwsCode(() => env.decodeUplink({ fPort: 1, bytes: [1] }), 'BH_CODEC_ERRORS', 'env-sensor.errors');
    assert.match(e.message, /expected 5 bytes, got 1/);
    assert.equal(env.encodes, true);
    const down = env.encodeDownlink({ data: { intervalMinutes: 15 } });
    assert.deepEqual([...down.bytes], [1, 15]);
    assert.equal(down.fPort, 10);
    throwsCode(() => env.encodeDownlink({ data: { intervalMinutes: 0 } }), 'BH_CODEC_ERRORS', 'env-sensor.errors');
  } finally {
    env.dispose();
  }
  const door = fromFile('door');
  assert.equal(door.encodes, false);
  assert.deepEqual(door.decodeUplink({ fPort: 2, bytes: [1, 1, 2] }).data, { open: true, tamper: false, count: 258 });
  throwsCode(() => door.encodeDownlink({ data: {} }), 'BH_CODEC_UNSUPPORTED', 'door');
  door.dispose();
  const meter = fromFile('meter');
  assert.deepEqual(meter.decodeUplink({ fPort: 3, bytes: [0x70, 0x11, 0x01, 0x00, 0x0c] }).data, { meter: { total: 70000, flow: 12 } });
  meter.dispose();
});

test('a codec that does not load is BH_CODEC_LOAD: a syntax error, a throw at load, no decodeUplink', () => {
  throwsCode(() => codec('bad', 'function decodeUplink( {'), 'BH_CODEC_LOAD', 'bad');
  throwsCode(() => codec('throws', 'throw new Error("no")'), 'BH_CODEC_LOAD', 'throws');
  throwsCode(() => codec('empty', 'var x = 1;'), 'BH_CODEC_LOAD', 'empty');
  throwsCode(() => codec('forever-at-load', 'for(;;){}'), 'BH_CODEC_LOAD', 'forever-at-load');
});

test('hostile codecs are contained: endless loop, huge allocation, deep recursion; each a coded error, the codec usable after', () => {
  const loop = codec('loop', 'function decodeUplink(i){ if (i.fPort === 9) for(;;){} return {data:{ok:1}}; }', { timeoutMs: 30 });
  const e = throwsCode(() => loop.decodeUplink({ fPort: 9, bytes: [] }), 'BH_CODEC_TIMEOUT', 'loop');
  assert.match(e.message, /longer than 30 ms/);
  assert.deepEqual(loop.decodeUplink({ fPort: 1, bytes: [] }).data, { ok: 1 }, 'made anew and usable');
  loop.dispose();

  const hog = codec('hog', 'function decodeUplink(i){ if (i.fPort === 9) { var a = []; for(;;) a.push(new Array(100000).fill(1)); } return {data:{ok:2}}; }', { memoryBytes: 8 * 1024 * 1024, timeoutMs: 2000 });
  throwsCode(() => hog.decodeUplink({ fPort: 9, bytes: [] }), 'BH_CODEC_MEMORY', 'hog');
  assert.deepEqual(hog.decodeUplink({ fPort: 1, bytes: [] }).data, { ok: 2 });
  hog.dispose();

  const deep = codec('deep', 'function f(n){ return f(n+1) + 1; } function decodeUplink(i){ return {data:{v:f(0)}}; }');
  throwsCode(() => deep.decodeUplink({ fPort: 1, bytes: [] }), 'BH_CODEC_MEMORY', 'deep');
  deep.dispose();

  const thrower = codec('thrower', 'function decodeUplink(i){ throw new TypeError("bad byte " + i.bytes[0]); }');
  const t = throwsCode(() => thrower.decodeUplink({ fPort: 1, bytes: [7] }), 'BH_CODEC_FAILED', 'thrower');
  assert.match(t.message, /TypeError: bad byte 7/);
  thrower.dispose();
});

test('a codec sees nothing of the host: no process, require, host globals; polluting its prototypes stays in its realm', () => {
  const probe = codec(
    'probe',
    `function decodeUplink(i) {
       Object.prototype.polluted = 'yes';
       Array.prototype.push = function () { return 'hijacked'; };
       return { data: {
         process: typeof process, require: typeof require, fetch: typeof fetch, setTimeout: typeof setTimeout,
         globalKeys: Object.keys(globalThis).filter(function (k) { return k !== 'decodeUplink'; }).join(','),
         fn: typeof Function('return this')().process,
       } };
     }`,
  );
  const out = probe.decodeUplink({ fPort: 1, bytes: [] }).data;
  assert.deepEqual(out, { process: 'undefined', require: 'undefined', fetch: 'undefined', setTimeout: 'undefined', globalKeys: '', fn: 'undefined' });
  assert.equal(({} as Record<string, unknown>)['polluted'], undefined, 'the host\'s Object.prototype is untouched');
  const arr: number[] = [];
  arr.push(1);
  assert.deepEqual(arr, [1]);
  probe.dispose();

  // __proto__ in the output is a plain key after JSON.parse, never the host's prototype.
  const proto = codec('proto', 'function decodeUplink(i){ return JSON.parse(\'{"data":{"__proto__":{"admin":true},"t":1}}\'); }');
  const data = proto.decodeUplink({ fPort: 1, bytes: [] }).data;
  assert.equal(({} as Record<string, unknown>)['admin'], undefined);
  assert.equal(data['t'], 1);
  proto.dispose();
});

test('what is not the device-repository shape, or not JSON, is BH_CODEC_OUTPUT', () => {
  for (const [name, body] of [
    ['nothing', 'return undefined;'],
    ['number', 'return 42;'],
    ['no-data', 'return {warnings: []};'],
    ['data-array', 'return {data: [1, 2]};'],
    ['cyclic', 'var o = {}; o.o = o; return {data: o};'],
    ['function', 'return {data: {f: function () {}}, warnings: []};'],
  ] as const) {
    const c = codec(name, `function decodeUplink(i){ ${body} }`);
    if (name === 'function') {
      // JSON drops functions: the data arrives without them, never as a host function.
      assert.deepEqual(c.decodeUplink({ fPort: 1, bytes: [] }).data, {});
    } else if (name === 'cyclic') {
      throwsCode(() => c.decodeUplink({ fPort: 1, bytes: [] }), 'BH_CODEC_FAILED', name);
    } else {
      throwsCode(() => c.decodeUplink({ fPort: 1, bytes: [] }), 'BH_CODEC_OUTPUT', name === 'no-data' || name === 'data-array' ? `${name}.data` : name);
    }
    c.dispose();
  }
  const enc = codec('enc', 'function decodeUplink(){return {data:{}}} function encodeDownlink(i){ return {bytes: [256], fPort: 1}; }');
  throwsCode(() => enc.encodeDownlink({ data: {} }), 'BH_CODEC_OUTPUT', 'enc.bytes');
  enc.dispose();
});

test('backhaul codecs test runs a codec description\'s examples (the real program): all pass; a wrong expectation fails with exit 1', { timeout: 60_000 }, async (t) => {
  for (const name of ['env-sensor', 'door', 'meter']) {
    const r = await runToEnd(['codecs', 'test', fileURLToPath(fixture(`codecs/${name}.yaml`))]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /example\(s\): \d+ passed, 0 failed\n$/);
  }
  const ok = await runToEnd(['codecs', 'test', fileURLToPath(fixture('codecs/env-sensor.yaml'))]);
  assert.match(ok.stdout, /^pass {2}uplinkDecoder 21\.5 °C, 45 %RH, 3\.012 V$/m);
  assert.match(ok.stdout, /^pass {2}uplinkDecoder too short$/m, 'an example expecting errors passes when the codec returns them');
  assert.match(ok.stdout, /^pass {2}downlinkEncoder report every 15 minutes$/m);
  const d = tempDir();
  t.after(() => d.cleanup());
  writeFileSync(join(d.path, 'door.js'), readFileSync(fixture('codecs/door.js')));
  writeFileSync(join(d.path, 'wrong.yaml'), 'uplinkDecoder:\n  fileName: door.js\n  examples:\n    - description: says closed\n      input: {fPort: 2, bytes: [1, 0, 0]}\n      output: {data: {open: false, tamper: false, count: 0}}\n');
  const bad = await runToEnd(['codecs', 'test', join(d.path, 'wrong.yaml'), '--json']);
  assert.equal(bad.code, 1);
  const results = JSON.parse(bad.stdout) as Array<{ pass: boolean; detail?: string }>;
  assert.equal(results[0]!.pass, false);
  assert.match(results[0]!.detail ?? '', /"open":true/);
  const missing = await runToEnd(['codecs', 'test', join(d.path, 'none.yaml')]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^BH_CONFIG_READ/);
});

test('a codec file the config names and that is not there is a config error naming codecs.<name> (backhaul check shows it)', async () => {
  const { buildConfig } = await import('../../src/runtime/config.js');
  const { builtinRegistry } = await import('../../src/runtime/registry.js');
  const d = tempDir();
  try {
    writeFileSync(join(d.path, 'there.js'), 'function decodeUplink(i) { return { data: {} }; }');
    const raw = { codecs: { there: 'there.js', gone: 'gone.js' }, inputs: {}, sinks: { out: { type: 'console' } }, routes: [{ to: ['out'] }] };
    assert.throws(
      () => buildConfig(raw, { source: 'test', dir: d.path }, { registry: builtinRegistry() }),
      (e: Error & { errors?: Array<{ code: string; path?: string }> }) => JSON.stringify(e.errors?.map((x) => [x.code, x.path])) === JSON.stringify([['BH_CODEC_LOAD', 'codecs.gone']]),
    );
  } finally {
    d.cleanup();
  }
});
