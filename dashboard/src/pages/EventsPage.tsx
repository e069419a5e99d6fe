// Events and alerts: the recent history (`GET /events?limit=100`) with the live feed on top of it
// (`EventSource` on `/events/stream`, event `hub-event`). When the stream breaks for good (the browser gives up on a
// non-200 answer, e.g. after a restart logged everyone out) it is reopened after a pause, and the history is loaded
// again first: that fills what was missed, and a 401 there brings back the login page.
import { useEffect, useId, useMemo, useState } from 'react';
import { asApiError, EVENT_STREAM_NAME, EVENT_STREAM_URL, isAbort, listEvents, type ApiError, type HubEvent, type Severity } from '../api';
import { Badge, ErrorBox, Loading, type Tone } from '../components/common';
import { fmtDateTime, fmtTime } from '../format';

const HISTORY = 100;
/** At most this many rows are kept on screen. */
const KEEP = 500;
const RECONNECT_MS = 5000;

type LiveState = 'connecting' | 'live' | 'reconnecting' | 'down';

const SEVERITY_TONE: Readonly<Record<Severity, Tone>> = { info: 'info', warning: 'warn', critical: 'bad' };
const LIVE_TONE: Readonly<Record<LiveState, Tone>> = { connecting: 'off', live: 'ok', reconnecting: 'warn', down: 'bad' };
const LIVE_LABEL: Readonly<Record<LiveState, string>> = { connecting: 'connecting…', live: 'live', reconnecting: 'reconnecting…', down: 'disconnected' };

interface Row {
  readonly key: string;
  readonly e: HubEvent;
  readonly fresh: boolean;
}

function keyOf(e: HubEvent): string {
  return JSON.stringify([e.ts, e.type, e.device ?? '', e.message]);
}

function severityOf(s: string): Severity {
  return s === 'warning' || s === 'critical' ? s : 'info';
}

function isEvent(v: unknown): v is HubEvent {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return typeof o['ts'] === 'number' && typeof o['type'] === 'string' && typeof o['message'] === 'string';
}

/** Newest first, without duplicates (an event can be in the history and in the stream). */
function merge(rows: readonly Row[], incoming: readonly HubEvent[], fresh: boolean): Row[] {
  const seen = new Set(rows.map((r) => r.key));
  const added: Row[] = [];
  for (const e of incoming) {
    const key = keyOf(e);
    if (seen.has(key)) continue;
    seen.add(key);
    added.push({ key, e, fresh });
  }
  if (!added.length) return rows as Row[];
  return [...added, ...rows].sort((a, b) => b.e.ts - a.e.ts).slice(0, KEEP);
}

export function EventsPage() {
  const sevId = useId();
  const [rows, setRows] = useState<Row[]>([]);
  const [loaded, setLoaded] = useState(false);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const [live, setLive] = useState<LiveState>('connecting');
  const [minSeverity, setMinSeverity] = useState<Severity>('info');
  const [retryTick, setRetryTick] = useState(0);

  useEffect(() => {
    let es: EventSource | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const ctrl = new AbortController();

    const open = (): void => {
      es = new EventSource(EVENT_STREAM_URL);
      es.onopen = () => setLive('live');
      es.addEventListener(EVENT_STREAM_NAME, (m: MessageEvent<string>) => {
        let v: unknown;
        try {
          v = JSON.parse(m.data);
        } catch {
          return;
        }
        if (isEvent(v)) setRows((r) => merge(r, [v], true));
      });
      es.onerror = () => {
        if (!es) return;
        if (es.readyState === EventSource.CLOSED) {
          // The browser gave up (a non-200 answer): try again later, history first.
          es.close();
          es = undefined;
          setLive('down');
          timer = setTimeout(() => void start(), RECONNECT_MS);
        } else {
          setLive('reconnecting');
        }
      };
    };

    const start = async (): Promise<void> => {
      try {
        const history = await listEvents(HISTORY, ctrl.signal);
        if (ctrl.signal.aborted) return;
        setRows((r) => merge(r, history, false));
        setError(undefined);
      } catch (e) {
        if (isAbort(e) || ctrl.signal.aborted) return;
        setError(asApiError(e));
      } finally {
        if (!ctrl.signal.aborted) setLoaded(true);
      }
      if (!ctrl.signal.aborted) open();
    };

    void start();
    return () => {
      ctrl.abort();
      clearTimeout(timer);
      es?.close();
    };
  }, [retryTick]);

  const shown = useMemo(() => {
    const rank: Record<Severity, number> = { info: 0, warning: 1, critical: 2 };
    return rows.filter((r) => rank[severityOf(r.e.severity)] >= rank[minSeverity]);
  }, [rows, minSeverity]);

  return (
    <section aria-labelledby="events-title">
      <div className="page-head">
        <h1 id="events-title">Events</h1>
        <p className="freshness">
          <Badge tone={LIVE_TONE[live]} title="The live feed from /api/v1/events/stream">
            {LIVE_LABEL[live]}
          </Badge>
        </p>
      </div>
      <div className="filters">
        <div className="field compact">
          <label htmlFor={sevId}>Show</label>
          <select id={sevId} value={minSeverity} onChange={(e) => setMinSeverity(e.target.value as Severity)} data-testid="filter-severity">
            <option value="info">everything</option>
            <option value="warning">warnings and critical</option>
            <option value="critical">critical only</option>
          </select>
        </div>
        {live === 'down' ? (
          <button type="button" className="btn" onClick={() => setRetryTick((t) => t + 1)}>
            Reconnect now
          </button>
        ) : null}
      </div>
      {error ? <ErrorBox error={error} title="Event history could not be loaded" onRetry={() => setRetryTick((t) => t + 1)} /> : null}
      {!loaded ? <Loading what="events" /> : null}
      {loaded && !shown.length ? <p className="empty-state">No events{minSeverity !== 'info' ? ' at this severity' : ''} yet.</p> : null}
      {shown.length ? (
        <ol className="events" aria-live="polite" aria-relevant="additions" data-testid="event-list">
          {shown.map(({ key, e, fresh }) => {
            const sev = severityOf(e.severity);
            return (
              <li key={key} className={`event sev-${sev}${fresh ? ' fresh' : ''}`} data-testid="event" data-severity={sev}>
                <time dateTime={new Date(e.ts).toISOString()} title={fmtDateTime(e.ts)} className="event-time">
                  {fmtTime(e.ts)}
                </time>
                <Badge tone={SEVERITY_TONE[sev]}>{sev}</Badge>
                <span className="event-type">{e.type}</span>
                {e.device ? (
                  <a className="event-device" href={`#/devices/${encodeURIComponent(e.device)}`}>
                    {e.device}
                  </a>
                ) : null}
                <span className="event-message">{e.message}</span>
                {e.data && Object.keys(e.data).length ? (
                  <details className="event-data">
                    <summary>data</summary>
                    <pre>{JSON.stringify(e.data, null, 2)}</pre>
                  </details>
                ) : null}
              </li>
            );
          })}
        </ol>
      ) : null}
    </section>
  );
}
