// throttle: at most `max` messages per interval per key (device, or the whole route), the excess dropped or, with
// latest-wins, the latest of it delivered when the next interval starts. Clock time: it protects what is downstream.
import { Type } from '@sinclair/typebox';
import type { ClockTimer } from '../../../core/clock.js';
import type { ConfigProblem } from '../../../core/driver.js';
import { defineStage } from '../../../core/driver.js';
import type { Message } from '../../../core/types.js';
import { Duration, durationMs, durationProblems } from '../../../core/duration.js';

const Options = Type.Object(
  {
    max: Type.Integer({ minimum: 1, default: 1, description: 'Messages let through per interval and key.' }),
    interval: Duration({ description: 'The interval; intervals are aligned to multiples of it on the clock.' }),
    key: Type.Union([Type.Literal('device'), Type.Literal('route')], {
      default: 'device',
      description: '`device`: a budget per device. `route`: one budget for everything through this stage (to limit what a sink gets, throttle the route that feeds it).',
    }),
    mode: Type.Union([Type.Literal('drop'), Type.Literal('latest-wins')], {
      default: 'drop',
      description: '`drop`: the excess is dropped. `latest-wins`: the last message of the excess is held and sent when the next interval starts; the ones it replaced are dropped.',
    }),
    maxKeys: Type.Integer({
      minimum: 1,
      default: 100_000,
      description: 'Most keys tracked within one interval. Past it, messages of further keys are dropped (`max_keys`).',
    }),
  },
  { additionalProperties: false },
);

interface Budget {
  used: number;
  held?: Message;
}

export const throttleStage = defineStage({
  kind: 'stage',
  type: 'throttle',
  keyed: true,
  handlesEvents: true,
  description: 'At most N messages per interval per device or per route; the excess dropped or latest-wins, counted as throttled.',
  options: Options,
  check(o) {
    const problems: ConfigProblem[] = durationProblems(o, { interval: 'positive' });
    return problems;
  },
  create(o, ctx) {
    const max = o.max;
    const intervalMs = durationMs(o.interval);
    const perDevice = (o.key) === 'device';
    const latestWins = o.mode === 'latest-wins';
    const maxKeys = o.maxKeys;
    let budgets = new Map<string, Budget>();
    let current = Math.floor(ctx.clock.now() / intervalMs);
    let timer: ClockTimer | undefined;
    let timerFor = -1;
    let stopped = false;

    /** Start a new interval if the clock reached one: held messages go out first, and use the new budget. */
    const roll = (): Message[] => {
      const idx = Math.floor(ctx.clock.now() / intervalMs);
      if (idx === current) return [];
      current = idx;
      const out: Message[] = [];
      const next = new Map<string, Budget>();
      for (const [k, b] of budgets) {
        if (b.held) {
          out.push(b.held);
          next.set(k, { used: 1 });
        }
      }
      budgets = next;
      return out;
    };

    const arm = (): void => {
      if (stopped || (timer && timerFor === current + 1)) return;
      if (timer) ctx.clock.clearTimeout(timer);
      const now = ctx.clock.now();
      timerFor = current + 1;
      timer = ctx.clock.setTimeout(
        () => {
          timer = undefined;
          for (const m of roll()) ctx.emit(m);
        },
        (current + 1) * intervalMs - now,
      );
    };

    return {
      process(m) {
        const out = roll();
        const key = perDevice ? (m.device ?? '') : '';
        let b = budgets.get(key);
        if (!b) {
          if (budgets.size >= maxKeys) {
            ctx.dropped('max_keys');
            return out;
          }
          b = { used: 0 };
          budgets.set(key, b);
        }
        if (b.used < max) {
          b.used++;
          out.push(m);
          return out;
        }
        if (!latestWins) {
          ctx.dropped('throttled');
          return out;
        }
        if (b.held) ctx.dropped('throttled');
        b.held = m;
        arm();
        return out;
      },
      stop() {
        stopped = true;
        if (timer) ctx.clock.clearTimeout(timer);
        timer = undefined;
        // A held message is the latest one of its key: it is sent rather than lost.
        for (const b of budgets.values()) if (b.held) ctx.emit(b.held);
        budgets.clear();
      },
    };
  },
});
