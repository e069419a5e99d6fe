// `npm run fuzz`: property-based fuzzing of every decoder and of the embedded broker's packet path (fuzz/README.md).
// Options: --runs N (inputs per target, default 100000), --seed S, --only decoders|broker.
import { parseArgs } from 'node:util';
import { fuzzBroker } from './broker.js';
import { fuzzDecoders } from './decoders.js';
import { LINEAR_SLOPE } from './stats.js';

const { values } = parseArgs({
  options: { runs: { type: 'string', default: '100000' }, seed: { type: 'string' }, only: { type: 'string' } },
});
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a positive integer, not ${values.runs}`);
const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
const only = values.only;
console.log(`fuzz: ${runs} inputs per target, seed ${seed} (rerun with --seed ${seed})\n`);

let failed = false;
if (only === undefined || only === 'decoders') {
  try {
    const { worstSlope } = fuzzDecoders({ runs, seed, scaling: true }, (r) => console.log(`${r}\n`));
    if (worstSlope > LINEAR_SLOPE) {
      console.log(`decoders: a family grew faster than linearly (slope ${worstSlope.toFixed(2)} > ${LINEAR_SLOPE})`);
      failed = true;
    }
  } catch (e) {
    console.log(`decoders: PROPERTY FAILED\n${e instanceof Error ? e.message : String(e)}`);
    failed = true;
  }
}
if (only === undefined || only === 'broker') {
  try {
    const { report } = await fuzzBroker({ runs, seed });
    console.log(`${report}\n`);
  } catch (e) {
    console.log(`broker: PROPERTY FAILED\n${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    failed = true;
  }
}
console.log(failed ? 'fuzz: FAILED' : 'fuzz: every property held');
process.exit(failed ? 1 : 0);
