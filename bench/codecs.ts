// Codec benchmark: LoRaWAN uplinks per second through a real vendor-format codec in its sandbox (QuickJS in
// WebAssembly, src/decoders/codecs.ts), one call per uplink as the data path makes them, and what a ChirpStack uplink
// costs the `chirpstack` decoder beside a plain JSON reading through the `json` decoder. Not a test: nothing here
// asserts a time. The team's goal: at least 5,000 codec uplinks/s on the 2-core machine.
//
//   npm run bench:codecs                (builds first)
//   node dist/bench/codecs.js --uplinks 20000 --repeat 5
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { arch, cpus, loadavg, platform, release } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { chirpstackDecoder } from '../src/decoders/chirpstack/index.js';
import { Codec, loadCodecEngine } from '../src/decoders/codecs.js';
import { jsonDecoder } from '../src/decoders/json/index.js';
import type { Frame } from '../src/core/types.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

const { values: args } = parseArgs({
  options: {
    uplinks: { type: 'string', default: '20000' },
    repeat: { type: 'string', default: '3' },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (args.help) {
  process.stdout.write('node dist/bench/codecs.js [--uplinks N] [--repeat R] [--out FILE]\n');
  process.exit(0);
}
const N = Number(args.uplinks);
const R = Number(args.repeat);

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function rate(fn: (i: number) => void): number {
  const runs: number[] = [];
  for (let r = 0; r < R; r++) {
    const t0 = performance.now();
    for (let i = 0; i < N; i++) fn(i);
    runs.push(N / ((performance.now() - t0) / 1000));
  }
  return median(runs);
}

const engine = await loadCodecEngine();
const source = readFileSync(join(ROOT, 'test', 'fixtures', 'codecs', 'env-sensor.js'), 'utf8');
const codec = new Codec(engine, 'env-sensor', source);
const bytes = [0x08, 0x66, 0x5a, 0x0b, 0xc4];
const codecRate = rate((i) => codec.decodeUplink({ fPort: 1, bytes: [bytes[0]!, (bytes[1]! + i) & 0xff, bytes[2]!, bytes[3]!, bytes[4]!] }));
codec.dispose();

const up = JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', 'lorawan', 'chirpstack-v4-up.json'), 'utf8')) as Record<string, unknown>;
const cs = chirpstackDecoder.create({ radio: true, statusValues: true });
const csFrames: Frame[] = Array.from({ length: 64 }, (_, i) => ({
  input: 'bench',
  topic: 'application/x/device/0101010101010101/event/up',
  payload: JSON.stringify({ ...up, fCnt: i, object: { temperature: 20 + i / 10, humidity: 40, battery: 3.01 } }),
  receivedAt: Date.now(),
}));
const csRate = rate((i) => cs(csFrames[i & 63]!));
const js = jsonDecoder.create({ device: 'device', timeFormat: 'auto', maxReadings: 10_000, seq: 'seq' });
const jsFrames: Frame[] = Array.from({ length: 64 }, (_, i) => ({
  input: 'bench',
  topic: 'home/x',
  payload: JSON.stringify({ device: '0101010101010101', seq: i, temperature: 20 + i / 10, humidity: 40, battery: 3.01 }),
  receivedAt: Date.now(),
}));
const jsRate = rate((i) => js(jsFrames[i & 63]!));

const rows = [
  ['codec decodeUplink in the sandbox (env-sensor.js)', codecRate],
  ['chirpstack decoder, an uplink with radio metadata', csRate],
  ['json decoder, a plain reading of the same values', jsRate],
] as const;
process.stdout.write(`Codec benchmark — ${new Date().toISOString()} — ${cpus().length} cores, Node ${process.version}, load ${loadavg().map((x) => x.toFixed(2)).join(' ')}\n\n`);
for (const [what, r] of rows) process.stdout.write(`${what.padEnd(52)} ${Math.round(r).toLocaleString('en-US').padStart(10)} /s  (${(1e6 / r).toFixed(1)} µs each)\n`);
process.stdout.write(`\nchirpstack uplink / json reading cost: ${(jsRate / csRate).toFixed(2)}×   (goal: at most 2×; codec goal: ≥ 5,000/s)\n`);

let sha = 'unknown';
try {
  sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
} catch {
  /* not a git checkout */
}
const file = args.out ?? join(ROOT, 'bench', 'results', `codecs-${new Date().toISOString().slice(0, 10)}-${sha}.json`);
mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
writeFileSync(
  file,
  `${JSON.stringify({ when: new Date().toISOString(), sha, machine: { cpus: cpus().length, model: cpus()[0]?.model, platform: platform(), release: release(), arch: arch(), node: process.version }, uplinks: N, repeat: R, perSecond: { codec: codecRate, chirpstack: csRate, json: jsRate } }, null, 2)}\n`,
);
process.stdout.write(`raw results: ${file}\n`);
