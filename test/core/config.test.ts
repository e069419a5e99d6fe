import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfigFile, loadConfigText, type LoadedConfig } from '../../src/runtime/config.js';
import { ConfigErrors, type BackhaulError } from '../../src/core/errors.js';
import { builtinRegistry } from '../../src/runtime/registry.js';
import { summarize } from '../../src/cli/summary.js';
import { tempDir } from '../helpers/context.js';

const registry = builtinRegistry();

function load(text: string, env: NodeJS.ProcessEnv = {}, dir = '/tmp'): LoadedConfig {
  return loadConfigText(text, join(dir, 'backhaul.jsonc'), { registry, env });
}

function errorsOf(text: string, env: NodeJS.ProcessEnv = {}, dir = '/tmp'): BackhaulError[] {
  try {
    load(text, env, dir);
  } catch (e) {
    assert.ok(e instanceof ConfigErrors, `expected ConfigErrors, got ${String(e)}`);
    return [...e.errors];
  }
  assert.fail('config was accepted but should not have been');
}

const base = (extra = '') => `{
  // a comment, as a person writes in vi
  "inputs": { "sim": { "type": "simulator", "devices": 2, } },
  "sinks": { "history": { "type": "sqlite" }, "screen": { "type": "console" } },
  "routes": [ { "name": "all", "to": ["history"] }, { "to": ["screen"] } ],
  ${extra}
}`;

test('a valid JSONC config loads, with defaults filled in and route names defaulted', () => {
  const cfg = load(base());
  assert.deepEqual(
    cfg.inputs.map((i) => [i.id, i.def.type, i.decoder.def.type]),
    [['sim', 'simulator', 'opentrv']],
  );
  assert.deepEqual(cfg.routes.map((r) => r.name), ['all', 'route-1']);
  assert.equal(cfg.sinks[0]!.outbox.maxItems, 1_000_000);
  assert.equal(cfg.sinks[0]!.outbox.type, 'sqlite');
  assert.equal(cfg.sinks[0]!.outbox.overflow, 'drop-oldest');
  assert.equal(cfg.dataDir, '/tmp/data');
  assert.deepEqual(cfg.warnings, []);
});

test('a syntax error names the line and column', () => {
  const errs = errorsOf('{\n  "inputs": {},\n  "sinks": { "a": { "type": "console" } }\n  "routes": []\n}');
  assert.equal(errs[0]!.code, 'BH_CONFIG_SYNTAX');
  assert.match(errs[0]!.message, /line 4, column 3/);
});

test('an unknown top-level key fails with its path and a suggestion', () => {
  const errs = errorsOf(base('"rutes": []'));
  assert.equal(errs.length, 1);
  assert.equal(errs[0]!.code, 'BH_CONFIG_UNKNOWN_KEY');
  assert.equal(errs[0]!.path, 'rutes');
  assert.match(errs[0]!.message, /did you mean "routes"/);
});

test('an unknown key inside a driver\'s options is reported at its location', () => {
  const errs = errorsOf(base().replace('"devices": 2,', '"devices": 2, "devicse": 3,'));
  assert.deepEqual(
    errs.map((e) => [e.code, e.path]),
    [['BH_CONFIG_UNKNOWN_KEY', 'inputs.sim.devicse']],
  );
});

test('wrong types, bad enums and missing keys name their JSON path', () => {
  const text = `{
    "sinks": { "s": { "type": "console", "outbox": { "overflow": "drop-everything", "maxItems": "many" } } },
    "routes": [ { "to": ["s"], "stages": [ { "type": "scale", "factor": "2" } ] }, { "name": "x" } ]
  }`;
  // One pass: the top-level schema's error (a route without `to`) comes with the driver-level ones.
  assert.deepEqual(errorsOf(text).map((e) => `${e.code} ${e.message}`).sort(), [
    'BH_CONFIG_SCHEMA routes[0].stages[0].factor: must be number, not string',
    'BH_CONFIG_SCHEMA routes[0].stages[0].measurement: is required',
    'BH_CONFIG_SCHEMA routes[1].to: is required',
    'BH_CONFIG_SCHEMA sinks.s.outbox.maxItems: must be integer, not string',
    'BH_CONFIG_SCHEMA sinks.s.outbox.overflow: must be one of: "drop-oldest", "drop-newest", "block"',
  ]);
});

test('an unknown driver type lists the known ones', () => {
  const errs = errorsOf(base().replace('"type": "console"', '"type": "consol"'));
  assert.equal(errs.length, 1);
  assert.equal(errs[0]!.code, 'BH_CONFIG_UNKNOWN_TYPE');
  assert.equal(errs[0]!.path, 'sinks.screen.type');
  assert.match(errs[0]!.message, /unknown sink type "consol" \(did you mean "console"\?\); known: console, emoncms, file, http, mqtt, nats, ntfy, postgres, smtp, sqlite, webhook/);
});

test('unknown decoder and stage types are reported too', () => {
  const errs = errorsOf(
    base().replace('"devices": 2,', '"devices": 2, "decoder": "opentvr",').replace('"name": "all",', '"name": "all", "stages": [{ "type": "windw" }],'),
  );
  assert.deepEqual(
    errs.map((e) => [e.code, e.path]),
    [
      ['BH_CONFIG_UNKNOWN_TYPE', 'inputs.sim.decoder'],
      ['BH_CONFIG_UNKNOWN_TYPE', 'routes[0].stages[0].type'],
    ],
  );
  assert.match(errs[0]!.message, /unknown decoder type "opentvr"/);
});

test('a route naming a sink that does not exist is a dangling reference', () => {
  const errs = errorsOf(base().replace('"to": ["screen"]', '"to": ["emon"]'));
  assert.equal(errs.length, 1);
  assert.equal(errs[0]!.code, 'BH_CONFIG_REF');
  assert.equal(errs[0]!.message, 'routes[1].to[0]: no sink named "emon"; sinks: history, screen');
});

test('a route matching an unknown input is a dangling reference', () => {
  const errs = errorsOf(base().replace('"name": "all",', '"name": "all", "match": { "inputs": ["radio"] },'));
  assert.deepEqual(errs.map((e) => e.message), ['routes[0].match.inputs[0]: no input named "radio"; inputs: sim']);
});

test('a sink no route uses is a warning, not an error', () => {
  const cfg = load(base().replace('"screen": { "type": "console" }', '"screen": { "type": "console" }, "spare": { "type": "console" }'));
  assert.deepEqual(cfg.warnings, ['sinks.spare: no route sends to this sink']);
});

test('several mistakes are reported together', () => {
  const errs = errorsOf(base().replace('"to": ["screen"]', '"to": ["emon"], "colour": 1').replace('"type": "sqlite"', '"type": "sqlite", "pth": "x"'));
  // top-level schema, driver options and references in one pass
  assert.deepEqual(errs.map((e) => e.path).sort(), ['routes[1].colour', 'routes[1].to[0]', 'sinks.history.pth']);
});

test('a config with a mistake at every stage of loading reports them all at once, and nothing that follows from another', () => {
  const text = `{
    "colour": "blue",                                                         // top level: unknown key
    "inputs": {
      "bus":  { "type": "broker", "port": 0, "prot": 1883 },                 // driver options: unknown key
      "feed": { "type": "mqtt", "url": "mqtt://127.0.0.1:1", "topics": ["a/#/b"] }, // driver check: topic filter
      "fm":   { "type": "radio" },                                          // unknown input type
      "nt":   { "port": 1 },                                                // top level: no type
      "dec":  { "type": "lines", "path": "-", "decoder": "opentvr" }        // unknown decoder
    },
    "sinks": {
      "up":   { "type": "mqtt", "url": "mqtt://127.0.0.1:1", "password": { "secret": "nowhere" } }, // secret missing
      "out":  { "type": "file", "maxFiles": -1, "outbox": { "overflow": "all" } }, // driver and outbox options
      "odd":  { "type": "" }                                               // top level: empty type (named by a route)
    },
    "routes": [
      { "name": "a", "to": ["up", "gone", "odd"], "match": { "inputs": ["bus", "nowhere"] } }, // dangling references
      { "name": "a", "to": ["out"], "stages": [ { "type": "scale", "factor": "2", "measurement": "t" }, { "type": "windw" } ] },
      { "name": "c" }                                                       // top level: no to
    ],
    "devices": { "declared": [ { "id": "AA-BB-CC-00-00-01", "type": "no-such-type" } ] }, // declared device
    "api": { "port": 0, "historian": "out" }                                // not a sqlite sink
  }`;
  const got = errorsOf(text).map((e) => `${e.code} ${e.path ?? ''}`).sort();
  assert.deepEqual(got, [
    'BH_CONFIG_REF api.historian',
    'BH_CONFIG_REF routes[0].match.inputs[1]',
    'BH_CONFIG_REF routes[0].to[1]',
    'BH_CONFIG_SCHEMA inputs.feed.topics[0]',
    'BH_CONFIG_SCHEMA inputs.nt.type',
    'BH_CONFIG_SCHEMA routes[1].name',
    'BH_CONFIG_SCHEMA routes[1].stages[0].factor',
    'BH_CONFIG_SCHEMA routes[2].to',
    'BH_CONFIG_SCHEMA sinks.odd.type',
    'BH_CONFIG_SCHEMA sinks.out.maxFiles',
    'BH_CONFIG_SCHEMA sinks.out.outbox.overflow',
    'BH_CONFIG_UNKNOWN_KEY colour',
    'BH_CONFIG_UNKNOWN_KEY inputs.bus.prot',
    'BH_CONFIG_UNKNOWN_TYPE inputs.dec.decoder',
    'BH_CONFIG_UNKNOWN_TYPE inputs.fm.type',
    'BH_CONFIG_UNKNOWN_TYPE routes[1].stages[1].type',
    'BH_DEVICE_TYPE devices.declared[0].type',
    'BH_SECRET_MISSING sinks.up.password',
  ]);
});

test('without a sinks object, that is the one error: routes naming sinks are not each reported again', () => {
  const errs = errorsOf(`{ "sinks": [], "routes": [ { "to": ["history"] }, { "to": ["screen"] } ] }`);
  assert.deepEqual(errs.map((e) => `${e.code} ${e.path ?? ''}`), ['BH_CONFIG_SCHEMA sinks']);
});

test('an unreadable credentials file is reported with the other mistakes, not the secrets it would have held', () => {
  const text = `{
    "secrets": "./no-such-credentials.json",
    "inputs": { "bus": { "type": "broker", "port": 0, "prot": 1 } },
    "sinks": { "up": { "type": "mqtt", "url": "mqtt://127.0.0.1:1", "password": { "secret": "broker" } } },
    "routes": [ { "to": ["up", "gone"] } ]
  }`;
  assert.deepEqual(errorsOf(text).map((e) => `${e.code} ${e.path ?? ''}`).sort(), [
    'BH_CONFIG_REF routes[0].to[1]',
    'BH_CONFIG_UNKNOWN_KEY inputs.bus.prot',
    'BH_SECRET_FILE secrets',
  ]);
});

// ------------------------------------------------------------------ secrets

const SECRET = 'hunter2-very-secret-password';
const withSecret = (secretsKey: string) => `{
  ${secretsKey}
  "sinks": { "up": { "type": "mqtt", "url": "mqtt://127.0.0.1:1", "password": { "secret": "broker" } } },
  "routes": [ { "to": ["up"] } ]
}`;

test('secrets resolve from the credentials file and never show in the check summary', () => {
  const d = tempDir();
  try {
    const cred = join(d.path, 'credentials.json');
    writeFileSync(cred, JSON.stringify({ broker: SECRET }));
    chmodSync(cred, 0o600);
    const cfg = load(withSecret('"secrets": "credentials.json",'), {}, d.path);
    assert.equal((cfg.sinks[0]!.options as { password: string }).password, SECRET);
    assert.deepEqual(cfg.secretValues, [SECRET]);
    const out = summarize(cfg);
    assert.ok(!out.includes(SECRET));
    assert.match(out, /password=<secret broker>/);
  } finally {
    d.cleanup();
  }
});

test('secrets resolve from the environment when the file lacks them', () => {
  const cfg = load(withSecret(''), { BACKHAUL_SECRET_BROKER: SECRET });
  assert.equal((cfg.sinks[0]!.options as { password: string }).password, SECRET);
});

test('a missing secret is a coded error naming where it is used and where it was looked for', () => {
  const errs = errorsOf(withSecret(''));
  assert.equal(errs[0]!.code, 'BH_SECRET_MISSING');
  assert.equal(errs[0]!.path, 'sinks.up.password');
  assert.match(errs[0]!.message, /BACKHAUL_SECRET_BROKER/);
});

test('a credentials file readable by group or others refuses to start', () => {
  const d = tempDir();
  try {
    const cred = join(d.path, 'credentials.json');
    writeFileSync(cred, JSON.stringify({ broker: SECRET }));
    chmodSync(cred, 0o644);
    const errs = errorsOf(withSecret('"secrets": "credentials.json",'), {}, d.path);
    assert.equal(errs[0]!.code, 'BH_SECRET_FILE_MODE');
    assert.match(errs[0]!.message, /chmod 600/);
    assert.ok(!errs[0]!.message.includes(SECRET));
  } finally {
    d.cleanup();
  }
});

test('a malformed credentials file is reported without quoting its content', () => {
  const d = tempDir();
  try {
    const cred = join(d.path, 'credentials.json');
    writeFileSync(cred, `{ "broker": "${SECRET}" `);
    chmodSync(cred, 0o600);
    const errs = errorsOf(withSecret('"secrets": "credentials.json",'), {}, d.path);
    assert.equal(errs[0]!.code, 'BH_SECRET_FILE');
    assert.ok(!errs[0]!.message.includes(SECRET));
  } finally {
    d.cleanup();
  }
});

test('schema errors on a secret-valued option do not print the secret', () => {
  const text = `{
    "sinks": { "up": { "type": "mqtt", "url": "mqtt://127.0.0.1:1", "qos": { "secret": "broker" } } },
    "routes": [ { "to": ["up"] } ]
  }`;
  const errs = errorsOf(text, { BACKHAUL_SECRET_BROKER: SECRET });
  assert.ok(errs.length > 0);
  for (const e of errs) assert.ok(!e.message.includes(SECRET), e.message);
  assert.equal(errs[0]!.path, 'sinks.up.qos');
});

test('a missing config file is BH_CONFIG_READ', () => {
  assert.throws(
    () => loadConfigFile('/nonexistent/backhaul.jsonc', { registry }),
    (e: unknown) => e instanceof ConfigErrors && e.errors[0]!.code === 'BH_CONFIG_READ' && /ENOENT/.test(e.message),
  );
});

test('problems a schema cannot see (topic filters, topic templates, mapping paths) are found at load, with their path', () => {
  const text = `{
    "inputs": {
      "devices": { "type": "broker", "port": 0, "topics": ["devices/#", "a/#/b"], "decoder": { "type": "json", "device": "sensor..id" } },
      "up": { "type": "mqtt", "url": "mqtt://127.0.0.1:1", "topics": ["x+/y"] }
    },
    "sinks": { "out": { "type": "mqtt", "url": "mqtt://127.0.0.1:1", "topic": "city/#/{device}" } },
    "routes": [ { "to": ["out"] } ]
  }`;
  assert.deepEqual(
    errorsOf(text).map((e) => [e.code, e.path]),
    [
      ['BH_CONFIG_SCHEMA', 'inputs.devices.decoder.device'],
      ['BH_CONFIG_SCHEMA', 'inputs.devices.topics[1]'],
      ['BH_CONFIG_SCHEMA', 'inputs.up.topics[0]'],
      ['BH_CONFIG_SCHEMA', 'sinks.out.topic'],
    ],
  );
});

test('a backlog alert above the outbox cap is refused: the backlog could never reach it', () => {
  const cfg = (outbox: string) => `{
    "inputs": { "sim": { "type": "simulator" } },
    "sinks": { "screen": { "type": "console", "outbox": ${outbox} } },
    "routes": [ { "to": ["screen"] } ]
  }`;
  const errs = errorsOf(cfg('{ "maxItems": 100, "backlogAlert": 101 }'));
  assert.deepEqual(
    errs.map((e) => [e.code, e.path]),
    [['BH_CONFIG_SCHEMA', 'sinks.screen.outbox.backlogAlert']],
  );
  assert.match(errs[0]!.message, /above maxItems 100/);
  assert.equal(load(cfg('{ "maxItems": 100, "backlogAlert": 100 }')).sinks[0]!.outbox.backlogAlert, 100);
  assert.equal(load(cfg('{ "backlogAlert": 5000 }')).sinks[0]!.outbox.maxItems, 1_000_000); // the default cap
});

test('an mqtt input with trustTopics needs brokerSync: the error names the option', () => {
  const text = JSON.stringify({ inputs: { mosq: { type: 'mqtt', url: 'mqtt://127.0.0.1:1883', topics: ['u4/#'], trustTopics: true } }, sinks: { out: { type: 'console' } }, routes: [{ to: ['out'] }] });
  const errs = errorsOf(text);
  assert.deepEqual(errs.map((e) => [e.code, e.path]), [['BH_CONFIG_REF', 'inputs.mosq.trustTopics']]);
  assert.match(errs[0]!.message, /trustTopics needs brokerSync/);
});
