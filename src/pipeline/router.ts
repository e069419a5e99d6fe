// The router: each message is offered to every route; a route that matches runs it through its stages and hands the
// result to its sinks' outboxes. One message may match several routes. Stages are per route, so stateful stages
// (windows) keep per-route state.
import type { Stage } from '../core/driver.js';
import type { Metrics } from '../core/metrics.js';
import type { Match } from '../core/config/schema.js';
import type { HubEvent, Message } from '../core/types.js';
import { topicMatches } from '../core/topic.js';
import { globMatcher } from '../core/glob.js';
import { pickValues } from './values.js';

/** Where routed messages go: the sink runners, by sink id. */
export interface RouteTarget {
  enqueue(msgs: readonly Message[]): Promise<void>;
}

export interface RouteRuntime {
  readonly name: string;
  readonly match: Match;
  readonly stages: readonly Stage[];
  readonly to: readonly RouteTarget[];
}

type Matcher = (m: Message) => Message | undefined;

/** Compile a route's `match` into a function returning the message (measurements narrowed) or undefined. */
export function compileMatch(match: Match): Matcher {
  const kind = match.kind ?? 'reading';
  const device = globMatcher(match.devices);
  const events = globMatcher(match.events);
  const inputs = match.inputs ? new Set(match.inputs) : undefined;
  const topics = match.topics;
  const measurements = match.measurements ? new Set(match.measurements) : undefined;
  return (m) => {
    if (kind !== 'any' && m.kind !== kind) return undefined;
    if (device && (m.device === undefined || !device(m.device))) return undefined;
    if (m.kind === 'event') {
      if (events && !events(m.type)) return undefined;
      // Reading-only criteria exclude events when given.
      if (inputs || topics || measurements || match.authenticated !== undefined) return undefined;
      return m;
    }
    if (inputs && !inputs.has(m.source.input)) return undefined;
    if (topics) {
      const topic = m.source.topic;
      if (topic === undefined || !topics.some((f) => topicMatches(f, topic))) return undefined;
    }
    if (match.authenticated !== undefined && m.authenticated !== match.authenticated) return undefined;
    if (measurements) return pickValues(m, (n) => measurements.has(n));
    return m;
  };
}

export class Router {
  private readonly compiled: Array<{ route: RouteRuntime; matcher: Matcher }>;

  constructor(
    routes: readonly RouteRuntime[],
    private readonly metrics: Metrics,
    /** Every event, once, as it enters the router or a stage makes one: for the live feed and its counter. */
    private readonly onEvent: (e: HubEvent) => void = () => undefined,
  ) {
    this.compiled = routes.map((route) => ({ route, matcher: compileMatch(route.match) }));
  }

  /** Route one message; resolves when every resulting message is in every outbox it was routed to. */
  async route(msg: Message): Promise<void> {
    const pending: Array<Promise<void>> = [];
    if (msg.kind === 'event') this.onEvent(msg);
    for (const { route, matcher } of this.compiled) {
      const m = matcher(msg);
      if (!m) continue;
      this.metrics.routeMessages.inc({ route: route.name });
      const out = runStages(route.stages, 0, m);
      if (out.length === 0) continue;
      if (msg.kind === 'reading') this.newEvents(out);
      for (const t of route.to) pending.push(t.enqueue(out));
    }
    await Promise.all(pending);
  }

  /** Continue a message a stage produced on its own (a timer), from the stage after it. */
  async resume(route: RouteRuntime, afterStage: number, msg: Message): Promise<void> {
    if (msg.kind === 'event') this.onEvent(msg); // made by a stage on a timer
    const out = runStages(route.stages, afterStage + 1, msg);
    if (out.length > 0) await Promise.all(route.to.map((t) => t.enqueue(out)));
  }

  /** Events in a route's output for a reading were made by its stages (severity): new events. */
  private newEvents(out: readonly Message[]): void {
    for (const m of out) if (m.kind === 'event') this.onEvent(m);
  }
}

export function runStages(stages: readonly Stage[], from: number, msg: Message): Message[] {
  let batch: Message[] = [msg];
  for (let i = from; i < stages.length && batch.length > 0; i++) {
    const stage = stages[i]!;
    const next: Message[] = [];
    for (const m of batch) next.push(...stage.process(m));
    batch = next;
  }
  return batch;
}
