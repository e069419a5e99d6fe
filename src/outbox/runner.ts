// Drains one sink's outbox into its sink: in order, in batches, with retry and exponential backoff with jitter.
// Each sink has its own runner and loop, so a slow or dead sink never holds up another.
import { backoffMs } from '../core/backoff.js';
import { humanDuration } from '../core/duration.js';
import type { Clock } from '../core/clock.js';
import { SinkError, type Sink, type SinkWriteResult } from '../core/driver.js';
import { errorText, isBackhaulError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Metrics } from '../core/metrics.js';
import type { OutboxOptions } from '../core/config/schema.js';
import { makeEvent } from '../core/events.js';
import type { HubEvent, Message, SinkState, SinkStatus } from '../core/types.js';
import { LogThrottle } from '../core/throttle.js';
import type { Outbox, OutboxEntry } from './outbox.js';

export type { SinkState, SinkStatus } from '../core/types.js';

export interface SinkRunnerDeps {
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly clock: Clock;
  /** Into the router: `sink.backlog` and `sink.backlog_ok` (with `backlogAlert`). */
  readonly raise?: (e: HubEvent) => void;
}

export class SinkRunner {
  private state: SinkState = 'starting';
  private delivered = 0;
  private dropped = 0;
  private retries = 0;
  private lastError: { message: string; at: number } | undefined;
  private stopping = false;
  private wakeStop: (() => void) | undefined;
  private readonly stopped: Promise<void>;
  private loopDone: Promise<void> = Promise.resolve();
  private started = false;
  private readonly dropsSinceLog = new Map<string, number>();
  /** Resolved when the outbox is empty or the sink has stopped for good (a stop waiting to drain). */
  private drainWaiters: Array<() => void> = [];
  private tokens = 0;
  private tokensAt = 0;
  private readonly throttle: LogThrottle;
  /** Ends the retry wait under way, if any: the sink said its far end is reachable again (`Sink.onReady`). */
  private wakeRetry: (() => void) | undefined;
  /** The sink said so during the attempt under way: the wait after it, if it fails, is skipped. */
  private readyDuringAttempt = false;
  /** Messages acknowledged to the outbox and not on disk yet: they hold their place in the window. */
  private acking = 0;
  private wakeup: (() => void) | undefined;
  private wakePromise: Promise<void> | undefined;
  /** Since `sink.backlog` was raised, until `sink.backlog_ok`: when, and the most messages waiting meanwhile. */
  private backlogHigh: { since: number; peak: number } | undefined;
  /** Failures since the last success: since when, how many, and whether `sink.failing` was raised for them. */
  private failing: { since: number; failures: number; raised: boolean } | undefined;

  constructor(
    readonly id: string,
    readonly type: string,
    private readonly sink: Sink,
    private readonly outbox: Outbox,
    private readonly opts: OutboxOptions,
    private readonly deps: SinkRunnerDeps,
  ) {
    this.stopped = new Promise((resolve) => (this.wakeStop = resolve));
    this.throttle = new LogThrottle(deps.clock);
  }

  start(): void {
    this.started = true;
    this.watchBacklog(); // a backlog kept from the last run may be over the alert already
    this.sink.onReady?.(() => this.sinkReady());
    this.loopDone = this.loop().catch((e: unknown) => {
      // The loop handles every sink error itself; reaching here is a bug, but must not take the process down.
      this.state = 'stopped';
      this.deps.logger.error({ err: e }, 'sink runner failed');
    });
  }

  /** Put routed messages in this sink's outbox. Resolves when they are in (as durable as the outbox is). */
  async enqueue(msgs: readonly Message[]): Promise<void> {
    if (msgs.length === 0) return;
    const { dropped } = await this.outbox.put(msgs);
    const labels = { sink: this.id };
    this.deps.metrics.sinkEnqueued.inc(labels, msgs.length);
    if (dropped > 0) this.countDropped('overflow', dropped, `outbox full (maxItems ${this.opts.maxItems}), ${this.opts.overflow} dropped messages`);
    this.watchBacklog();
  }

  /**
   * `sink.backlog` when the backlog reaches `backlogAlert`, `sink.backlog_ok` once it is down to half of it or less:
   * the gap between the two is the hysteresis, so a backlog hovering at the alert raises one event per crossing.
   * Looked at whenever the backlog grows (enqueue) or shrinks (acknowledged delivery).
   */
  private watchBacklog(): void {
    const alert = this.opts.backlogAlert;
    const raise = this.deps.raise;
    if (alert === undefined || !raise || this.stopping) return;
    const st = this.outbox.stats();
    const now = this.deps.clock.now();
    const high = this.backlogHigh;
    if (!high) {
      if (st.items < alert) return;
      this.backlogHigh = { since: now, peak: st.items };
      const oldestAgeMs = st.oldestAt === undefined ? 0 : Math.max(0, now - st.oldestAt);
      const why = this.lastError ? ` (${this.state}: ${this.lastError.message})` : ` (${this.state})`;
      raise(
        makeEvent(
          'sink.backlog',
          { sink: this.id, items: st.items, bytes: st.bytes, oldestAgeMs, threshold: alert, state: this.state },
          { ts: now, message: `sink ${this.id}: ${st.items} messages waiting, the alert is at ${alert}${why}` },
        ),
      );
      return;
    }
    high.peak = Math.max(high.peak, st.items);
    if (st.items > Math.floor(alert / 2)) return;
    this.backlogHigh = undefined;
    raise(
      makeEvent(
        'sink.backlog_ok',
        { sink: this.id, items: st.items, threshold: alert, peak: high.peak, durationMs: Math.max(0, now - high.since) },
        { ts: now, message: `sink ${this.id}: backlog down to ${st.items} (it peaked at ${high.peak})` },
      ),
    );
  }

  status(): SinkStatus {
    const st = this.outbox.stats();
    const s = {
      id: this.id,
      type: this.type,
      state: this.state,
      backlog: st.items,
      backlogBytes: st.bytes,
      oldestAgeMs: st.oldestAt === undefined ? 0 : Math.max(0, this.deps.clock.now() - st.oldestAt),
      delivered: this.delivered,
      dropped: this.dropped,
      retries: this.retries,
    };
    return this.lastError ? { ...s, lastError: this.lastError } : s;
  }

  /**
   * Deliver what is queued (for up to `drainMs`), then close the sink. What is still queued after that is reported;
   * with the in-memory outbox it is lost, which is why the durable outbox exists.
   */
  async stop(drainMs = 5000): Promise<void> {
    if (this.started && this.outbox.stats().items > 0 && this.state !== 'stopped') {
      // The drain budget is wall-clock time (a shutdown must end), not the injected clock that drives retries.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.drainWaiters.push(resolve)),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, drainMs))),
      ]);
      clearTimeout(timer);
    }
    this.stopping = true;
    this.wakeStop?.();
    this.signal();
    await this.loopDone;
    const left = this.outbox.stats().items;
    if (left > 0 && this.opts.type === 'memory') {
      this.deps.logger.warn({ backlog: left, kept: false }, `sink stopped with ${left} message(s) not delivered; its outbox is in memory, so they are lost`);
    } else if (left > 0) {
      this.deps.logger.info({ backlog: left, kept: true }, `sink stopped with ${left} message(s) not delivered yet; they are kept in its outbox and sent after the next start`);
    }
    try {
      await this.sink.close();
    } catch (e) {
      this.deps.logger.warn({ err: e }, 'sink close failed');
    }
    await this.outbox.close();
    this.state = 'closed';
  }

  /** Close the outbox early (blocked puts fail); what it holds stays in it. Used when a stop cannot wait any more. */
  closeOutbox(): Promise<void> {
    return this.outbox.close();
  }

  private notifyDrained(): void {
    if (this.outbox.stats().items > 0 && this.state !== 'stopped') return;
    const w = this.drainWaiters;
    this.drainWaiters = [];
    for (const f of w) f();
  }

  private countDropped(reason: 'overflow' | 'rejected', n: number, message: string): void {
    this.dropped += n;
    this.deps.metrics.sinkDropped.inc({ sink: this.id, reason }, n);
    // One line a minute per reason, carrying every message dropped since the last line.
    const count = (this.dropsSinceLog.get(reason) ?? 0) + n;
    this.dropsSinceLog.set(reason, count);
    const code = reason === 'overflow' ? 'BH_OUTBOX_OVERFLOW' : 'BH_SINK_REJECTED';
    if (this.throttle.take(`drop:${reason}`) !== null) {
      this.dropsSinceLog.set(reason, 0);
      this.deps.logger.warn({ code, reason, count, totalDropped: this.dropped }, `${message} (${count} since the last such line)`);
    }
  }

  /**
   * Sleep `ms` on the clock; a stop ends it. `wakeable`: so does the sink reporting its far end reachable again (an
   * MQTT reconnect, `Sink.onReady`), so a backlog moves as soon as it can, not when a long backoff runs out.
   */
  private sleepUnlessStopping(ms: number, wakeable = false): Promise<void> {
    if (this.stopping) return Promise.resolve();
    if (wakeable && this.readyDuringAttempt) {
      this.readyDuringAttempt = false;
      this.deps.logger.debug('sink ready again; retrying now');
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        this.deps.clock.clearTimeout(t);
        if (this.wakeRetry === done) this.wakeRetry = undefined;
        resolve();
      };
      const t = this.deps.clock.setTimeout(done, ms);
      if (wakeable) this.wakeRetry = done;
      void this.stopped.then(done);
    });
  }

  /**
   * From the sink. Not during a wait: remembered until the attempt under way ends, so a reconnect that comes while a
   * write is failing still skips the wait after it. Backoff growth (`attempt`) is left alone, only a success resets
   * it: a far end that accepts connections and fails every write is still tried at most once per reconnect.
   */
  private sinkReady(): void {
    const wake = this.wakeRetry;
    if (wake) {
      this.deps.logger.debug('sink ready again; retrying now');
      wake();
    } else {
      this.readyDuringAttempt = true;
    }
  }

  /**
   * Token bucket (Kura's lesson: a backlog replayed at full speed trips a remote service's rate limits). Waits until
   * at least one token is there and returns how many messages the next batch may hold. No limit: the batch size.
   */
  private async takeTokens(want: number): Promise<number> {
    const rate = this.opts.ratePerSecond;
    if (rate === undefined) return want;
    const burst = this.opts.rateBurst ?? Math.max(1, Math.ceil(rate));
    if (this.tokensAt === 0) {
      this.tokens = burst; // start with a full bucket
      this.tokensAt = this.deps.clock.now();
    }
    for (;;) {
      const now = this.deps.clock.now();
      this.tokens = Math.min(burst, this.tokens + ((now - this.tokensAt) / 1000) * rate);
      this.tokensAt = now;
      if (this.tokens >= 1 || this.stopping) return Math.max(1, Math.min(want, Math.floor(this.tokens)));
      await this.sleepUnlessStopping(Math.ceil(((1 - this.tokens) / rate) * 1000));
    }
  }

  private spendTokens(n: number): void {
    if (this.opts.ratePerSecond !== undefined) this.tokens -= n;
  }

  private backoff(attempt: number): number {
    return backoffMs(attempt, this.opts.retryMinMs, this.opts.retryMaxMs);
  }

  /** The far end's Retry-After when the sink read one (at most an hour), else the backoff. */
  private retryWait(e: unknown, attempt: number): number {
    const after = e instanceof SinkError ? e.retryAfterMs : undefined;
    return after !== undefined && Number.isFinite(after) && after >= 0 ? Math.min(after, 3_600_000) : this.backoff(attempt);
  }

  /**
   * A failure: `sink.failing` once the failures since the last success span `failingAfterMs` (at once for a sink
   * that stops for good). Raised once per run of failures; `sink.recovered` ends it (`recovered`).
   */
  private watchFailing(message: string, fatal: boolean): void {
    const now = this.deps.clock.now();
    const f = (this.failing ??= { since: now, failures: 0, raised: false });
    f.failures++;
    const raise = this.deps.raise;
    if (f.raised || !raise || this.stopping) return;
    if (!fatal && now - f.since < this.opts.failingAfterMs) return;
    f.raised = true;
    const how = fatal ? 'has stopped for good' : `has been failing for ${humanDuration(now - f.since)}`;
    raise(
      makeEvent(
        'sink.failing',
        { sink: this.id, since: f.since, failures: f.failures, error: message },
        { ts: now, message: `sink ${this.id} ${how} (${f.failures} failed attempt${f.failures === 1 ? '' : 's'}): ${message}` },
      ),
    );
  }

  /** A success after failures: `sink.recovered` if `sink.failing` was raised for them. */
  private recovered(): void {
    const f = this.failing;
    if (!f) return;
    this.failing = undefined;
    if (!f.raised || !this.deps.raise) return;
    const now = this.deps.clock.now();
    this.deps.raise(
      makeEvent('sink.recovered', { sink: this.id, durationMs: Math.max(0, now - f.since) }, { ts: now, message: `sink ${this.id} delivers again after ${humanDuration(now - f.since)}` }),
    );
  }

  /**
   * Keep the last error as `CODE message` for status. A sink's own failure while opening is BH_SINK_OPEN whatever it
   * was coded as; other errors without a code get the phase's code.
   */
  private recordError(e: unknown, code: 'BH_SINK_OPEN' | 'BH_SINK_WRITE'): string {
    const message =
      isBackhaulError(e) && !(e instanceof SinkError && code === 'BH_SINK_OPEN') ? e.toString() : `${code} ${isBackhaulError(e) ? e.message : errorText(e)}`;
    this.lastError = { message, at: this.deps.clock.now() };
    return message;
  }

  private get batchSize(): number {
    return this.opts.batchSize ?? 100;
  }

  /** Batches in flight at most. */
  private get window(): number {
    return Math.max(1, this.opts.window ?? 1);
  }

  /**
   * Messages in flight at most: written and not answered, or acknowledged and not on disk yet. What a crash or a
   * failed write can make the sink receive twice.
   */
  private get windowMessages(): number {
    return this.window * this.batchSize;
  }

  private room(inflight: readonly Flight[]): boolean {
    if (inflight.length >= this.window) return false;
    let n = this.acking;
    for (const f of inflight) n += f.n;
    return n < this.windowMessages;
  }

  /** Wake the loop: an acknowledgement is on disk (a place in the window is free), or a stop began. */
  private signal(): void {
    const w = this.wakeup;
    this.wakeup = undefined;
    this.wakePromise = undefined;
    w?.();
  }

  /** One shared promise until the next signal, so waiting in every turn of the loop adds nothing up. */
  private signalled(): Promise<void> {
    this.wakePromise ??= new Promise((resolve) => (this.wakeup = resolve));
    return this.wakePromise;
  }

  /**
   * Take batches in order and keep up to `window` of them in flight; their results are handled in order, each
   * success acknowledged into the outbox (its cursor). A failure waits for the rest of the window, then everything
   * not acknowledged is sent again after the backoff: a restart or a retry repeats at most one window.
   */
  private async loop(): Promise<void> {
    const log = this.deps.logger;
    let opened = false;
    let attempt = 0;
    const inflight: Flight[] = [];
    while (!this.stopping) {
      if (!opened) {
        this.readyDuringAttempt = false;
        try {
          await this.sink.open();
          opened = true;
          attempt = 0;
          this.state = 'up';
          log.debug('sink open');
        } catch (e) {
          const message = this.recordError(e, 'BH_SINK_OPEN');
          const fatal = e instanceof SinkError && !e.retryable;
          this.watchFailing(message, fatal);
          if (fatal) {
            this.state = 'stopped';
            log.error({ err: message }, 'sink cannot open and will not retry; its messages are kept until restart');
            this.notifyDrained();
            return;
          }
          this.state = 'retrying';
          if (this.throttle.take('open') !== null) log.warn({ err: message }, 'sink cannot open yet, retrying');
          await this.sleepUnlessStopping(this.retryWait(e, attempt++), true);
          continue;
        }
      }
      // Fill the window.
      while (!this.stopping && this.room(inflight) && this.outbox.readable()) {
        const linger = this.opts.lingerMs ?? 0;
        if (linger > 0 && inflight.length === 0 && this.outbox.stats().items < this.batchSize) await this.sleepUnlessStopping(linger);
        const size = await this.takeTokens(this.batchSize);
        if (this.stopping) break;
        let batch: readonly OutboxEntry[];
        try {
          batch = await this.outbox.take(size);
        } catch (e) {
          this.recordError(e, 'BH_SINK_WRITE');
          log.error({ err: e }, 'reading the outbox failed; trying again in a second');
          await this.sleepUnlessStopping(1000);
          break;
        }
        if (batch.length === 0) {
          // Readable but nothing given: the outbox was closed under us (a stop that could not wait). Do not spin.
          if (inflight.length === 0) await this.sleepUnlessStopping(100);
          break;
        }
        this.spendTokens(batch.length);
        if (inflight.length === 0) this.readyDuringAttempt = false;
        inflight.push({
          n: batch.length,
          result: this.sink.write(batch.map((e) => e.msg)).then(
            (r) => ({ ok: true as const, rejected: r?.rejected ?? [] }),
            (error: unknown) => ({ ok: false as const, error }),
          ),
        });
      }
      const head = inflight[0];
      if (!head) {
        if (this.stopping) break;
        const waits: Array<Promise<unknown>> = [this.signalled()];
        if (this.room(inflight)) waits.push(this.outbox.whenReadable());
        await Promise.race(waits);
        continue;
      }
      // The oldest write's answer, or room and something to send meanwhile.
      const waits: Array<Promise<FlightResult | undefined>> = [head.result, this.signalled().then(() => undefined)];
      if (this.room(inflight)) waits.push(this.outbox.whenReadable().then(() => undefined));
      const res = await Promise.race(waits);
      if (res === undefined) continue;
      inflight.shift();
      if (res.ok) {
        this.settled(head.n, res.rejected);
        attempt = 0;
        continue;
      }
      // The rest of the window is not acknowledged whatever it gets: it goes again, in order, after the wait.
      await Promise.all(inflight.map((f) => f.result));
      inflight.length = 0;
      this.outbox.release(); // while it waits for a retry, overflow may drop from it again
      if (res.error instanceof SinkError && res.error.deferred) {
        // The sink's own choice to wait (its rate limit): no failure, no retry counted, state unchanged.
        this.deps.logger.debug({ reason: res.error.message, waitMs: res.error.retryAfterMs }, 'sink defers delivery');
        await this.sleepUnlessStopping(res.error.retryAfterMs ?? this.opts.retryMinMs, true);
        continue;
      }
      const message = this.recordError(res.error, 'BH_SINK_WRITE');
      const fatal = res.error instanceof SinkError && !res.error.retryable;
      this.watchFailing(message, fatal);
      if (fatal) {
        this.state = 'stopped';
        log.error({ err: message, backlog: this.outbox.stats().items }, 'sink failed and will not retry; its messages are kept until restart');
        this.notifyDrained();
        return;
      }
      this.retries++;
      this.deps.metrics.sinkRetries.inc({ sink: this.id });
      this.state = 'retrying';
      const suppressed = this.throttle.take('write');
      if (suppressed !== null) log.warn({ err: message, backlog: this.outbox.stats().items, earlierSuppressed: suppressed }, 'sink write failed, retrying');
      await this.sleepUnlessStopping(this.retryWait(res.error, attempt++), true);
    }
    // Stopping: what is in flight still counts once answered, in order, up to the first failure.
    for (const f of inflight) {
      const res = await f.result;
      if (!res.ok) break;
      this.settled(f.n, res.rejected);
    }
    this.outbox.release();
    while (this.acking > 0) await this.signalled();
  }

  /** A write of the oldest `n` taken messages succeeded (some perhaps refused for good): acknowledge them. */
  private settled(n: number, rejected: readonly SinkRejection[]): void {
    for (const r of rejected) this.countDropped('rejected', 1, `sink refused a message for good: ${r.error.toString()}`);
    const ok = n - rejected.length;
    this.delivered += ok;
    this.deps.metrics.sinkDelivered.inc({ sink: this.id }, ok);
    this.acking += n;
    this.outbox.ack(n).then(
      () => {
        this.acking -= n;
        this.watchBacklog();
        this.notifyDrained();
        this.signal();
      },
      (e: unknown) => {
        // The cursor did not reach the disk this time; it goes with the next commit (a restart would resend these).
        this.acking -= n;
        this.deps.logger.warn({ err: e }, 'recording delivered messages failed');
        this.signal();
      },
    );
    this.state = 'up';
    this.recovered();
    this.notifyDrained();
  }
}

type SinkRejection = NonNullable<SinkWriteResult['rejected']>[number];

type FlightResult = { readonly ok: true; readonly rejected: readonly SinkRejection[] } | { readonly ok: false; readonly error: unknown };

interface Flight {
  readonly n: number;
  readonly result: Promise<FlightResult>;
}
