// One conformance suite that every sink must pass, run against a real far end per sink type (harnesses in
// conformance.test.ts). What it holds each sink to (src/core/driver.ts, `Sink`):
// * `write` resolves only once the far end has the batch: what it wrote is read back from the far end right after
//   the await, with no waiting;
// * an empty batch resolves and sends nothing; an event in a batch is accepted (delivered, or ignored by a sink that
//   has no place for events), never an error;
// * a failure that may pass (5xx, connection refused, a locked file, a full disk) is a SinkError with
//   `retryable: true`; one that needs an operator (credentials, a wrong url, a file that is not the sink's) is a
//   SinkError with `retryable: false`, from `open()` or `write()` as the sink finds it;
// * items the far end refuses for good are returned in `rejected` (code BH_SINK_REJECTED), per item or for the whole
//   batch as the far end answers, and the rest of the batch is delivered;
// * `close()` twice is safe;
// * `open()` after `close()` works, and the reopened sink delivers. (Every built-in sink can: each `open()` makes its
//   connection, thread or file handle anew. The runner opens a sink once, but a sink restarted by an operator or a
//   future reload must not need a new instance.)
// A case that does not apply to a sink is skipped by name with the harness's reason, never passed silently.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SchemaValidator } from '../../src/core/config/validate.js';
import { SinkError, type Sink, type SinkDefinition, type SinkWriteResult } from '../../src/core/driver.js';
import { BackhaulError } from '../../src/core/errors.js';
import { makeEvent } from '../../src/core/events.js';
import type { HubEvent, Message, Reading } from '../../src/core/types.js';
import { driverContext, tempDir } from '../helpers/context.js';

/** A real far end (a broker, a server, a folder) that a sink's options point at, and what arrived there. */
export interface FarEnd {
  /** The sink's options (before schema defaults), aimed at this far end. */
  readonly options: Record<string, unknown>;
  /** The `seq` of every reading the far end holds, in the order it took them. */
  readonly arrived: () => Promise<number[]>;
  /** Releases the far end (and what it captured). */
  readonly close: () => Promise<void>;
}

/** A far end that can refuse single readings for good (by seq). */
export interface RefusingFarEnd extends FarEnd {
  readonly refuse: (seqs: readonly number[]) => void;
}

/** A far end in a failing state, and where the sink finds out. */
export interface FailureScenario {
  readonly name: string;
  /** `open`: `open()` rejects; `write`: `open()` resolves and the next `write()` rejects. */
  readonly at: 'open' | 'write';
  readonly make: (dataDir: string) => Promise<FailingFarEnd>;
}

export interface FailingFarEnd {
  readonly options: Record<string, unknown>;
  /** For failures that happen to an open sink (a broker going away): called between `open()` and `write()`. */
  readonly breakNow?: () => Promise<void>;
  readonly close: () => Promise<void>;
}

/** Why a case does not apply to this sink (shown as the skip reason). */
export interface NotApplicable {
  readonly notApplicable: string;
}

export interface SinkHarness {
  /** Why the far end cannot run here (a server not installed): every case is skipped with this message. */
  readonly skip?: string | false;
  /** A far end that accepts everything. */
  readonly farEnd: (dataDir: string) => Promise<FarEnd>;
  readonly retryable: readonly FailureScenario[] | NotApplicable;
  readonly fatal: readonly FailureScenario[] | NotApplicable;
  /** Refusals for good: `item` (only the refused readings are rejected) or `batch` (the far end refuses the batch). */
  readonly rejections: { readonly granularity: 'item' | 'batch'; farEnd: (dataDir: string) => Promise<RefusingFarEnd> } | NotApplicable;
}

const T0 = Date.UTC(2026, 0, 1);
const isNa = (x: object): x is NotApplicable => 'notApplicable' in x;

/** A reading the far ends can recognise by its seq (one numeric value, so every sink sends it whole). */
export function conformanceReading(seq: number): Reading {
  return { kind: 'reading', device: 'conf1', ts: T0 + seq * 1000, seq, values: { n: seq }, authenticated: false, source: { input: 'conf', decoder: 'json' } };
}

const event: HubEvent = makeEvent('device.offline', { lastSeen: T0 - 7_200_000, silentMs: 7_200_000, threshold: 3_600_000 }, { ts: T0, device: 'conf1', message: 'silent for 2h' });
const batch = (...seqs: number[]): Message[] => seqs.map(conformanceReading);

function isSinkError(retryable: boolean) {
  return (e: unknown) => {
    assert.ok(e instanceof SinkError, `expected a SinkError, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    assert.equal(e.retryable, retryable, `retryable should be ${retryable}: ${e.message}`);
    assert.ok(e.message.length > 0, 'the error says what failed');
    return true;
  };
}

const validator = new SchemaValidator();

export function sinkConformance(def: SinkDefinition, harness: SinkHarness): void {
  const name = `sink conformance: ${def.type}`;

  /** The sink as the hub makes it: options checked against its schema (defaults filled) and by its `check`. */
  function create(options: Record<string, unknown>, dataDir: string): Sink {
    const o = structuredClone(options);
    const errors = validator.validate(def.options, o, `sinks.conf`);
    assert.deepEqual(errors.map(String), [], 'the harness gives valid options');
    assert.deepEqual(def.check?.(o as never) ?? [], [], 'the harness gives options that pass check');
    return def.create(o, driverContext({ id: 'conf', dataDir }));
  }

  /** Runs `fn` with a fresh data folder, far end and sink; closes the sink and far end after, whatever happened. */
  async function withSink<F extends FarEnd>(make: (dir: string) => Promise<F>, fn: (sink: Sink, far: F) => Promise<void>): Promise<void> {
    const dir = tempDir('backhaul-sink-conf-');
    const far = await make(dir.path);
    const sink = create(far.options, dir.path);
    try {
      await fn(sink, far);
    } finally {
      await sink.close().catch(() => undefined);
      await far.close();
      dir.cleanup();
    }
  }

  test(`${name}: a write resolves only once the far end has the batch`, { skip: harness.skip ?? false }, () =>
    withSink(harness.farEnd, async (sink, far) => {
      await sink.open();
      const r1 = await sink.write(batch(1, 2, 3));
      assert.deepEqual(await far.arrived(), [1, 2, 3], 'read back right after the write resolved');
      assert.deepEqual(r1 ?? {}, {}, 'nothing rejected');
      await sink.write(batch(4));
      assert.deepEqual(await far.arrived(), [1, 2, 3, 4]);
    }));

  test(`${name}: an empty batch resolves and sends nothing; an event is accepted`, { skip: harness.skip ?? false }, () =>
    withSink(harness.farEnd, async (sink, far) => {
      await sink.open();
      const empty = await sink.write([]);
      assert.deepEqual(empty ?? {}, {});
      const withEvent = await sink.write([event, ...batch(7)]);
      assert.deepEqual(withEvent?.rejected ?? [], [], 'an event is not refused');
      assert.deepEqual(await far.arrived(), [7]);
    }));

  for (const kind of ['retryable', 'fatal'] as const) {
    const scenarios = harness[kind];
    if (isNa(scenarios)) {
      test(`${name}: ${kind} failures`, { skip: `not applicable: ${scenarios.notApplicable}` }, () => undefined);
      continue;
    }
    assert.ok(scenarios.length > 0, `${def.type}: the harness lists ${kind} failures or says why there are none`);
    for (const sc of scenarios) {
      test(`${name}: ${sc.name} is a ${kind === 'retryable' ? 'retryable' : 'fatal (not retryable)'} SinkError from ${sc.at}()`, { skip: harness.skip ?? false }, () =>
        withSink(
          async (dir) => {
            const f = await sc.make(dir);
            return { ...f, arrived: () => Promise.resolve([]) };
          },
          async (sink, far) => {
            const retryable = kind === 'retryable';
            if (sc.at === 'open') {
              await assert.rejects(sink.open(), isSinkError(retryable));
              return;
            }
            await sink.open();
            await far.breakNow?.();
            await assert.rejects(sink.write(batch(1, 2)), isSinkError(retryable));
          },
        ));
    }
  }

  const rej = harness.rejections;
  if (isNa(rej)) {
    test(`${name}: items refused for good are reported as rejected`, { skip: `not applicable: ${rej.notApplicable}` }, () => undefined);
  } else {
    test(`${name}: items refused for good are reported as rejected (per ${rej.granularity}), the rest delivered`, { skip: harness.skip ?? false }, () =>
      withSink(rej.farEnd, async (sink, far) => {
        await sink.open();
        far.refuse([2]);
        const res: SinkWriteResult | void = await sink.write(batch(1, 2, 3));
        const rejected = res?.rejected ?? [];
        for (const r of rejected) {
          assert.ok(r.error instanceof BackhaulError, 'a rejection carries a BackhaulError');
          assert.equal(r.error.code, 'BH_SINK_REJECTED', r.error.message);
        }
        if (rej.granularity === 'item') {
          assert.deepEqual(rejected.map((r) => r.index), [1], 'only the refused reading');
          assert.deepEqual(await far.arrived(), [1, 3]);
        } else {
          assert.deepEqual(rejected.map((r) => r.index), [0, 1, 2], 'the far end refused the batch: every item of it');
          assert.deepEqual(await far.arrived(), []);
        }
        far.refuse([]);
        assert.deepEqual((await sink.write(batch(4)))?.rejected ?? [], [], 'a refusal is for those items only');
        assert.deepEqual((await far.arrived()).at(-1), 4);
      }));
  }

  test(`${name}: close() twice is safe`, { skip: harness.skip ?? false }, () =>
    withSink(harness.farEnd, async (sink, far) => {
      await sink.open();
      await sink.write(batch(1));
      await sink.close();
      await sink.close();
      assert.deepEqual(await far.arrived(), [1]);
    }));

  test(`${name}: open() after close() works, and the reopened sink delivers`, { skip: harness.skip ?? false }, () =>
    withSink(harness.farEnd, async (sink, far) => {
      await sink.open();
      await sink.write(batch(1));
      await sink.close();
      await sink.open();
      await sink.write(batch(2));
      assert.deepEqual(await far.arrived(), [1, 2]);
    }));
}
