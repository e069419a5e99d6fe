// Alarms: the open ones first (unacknowledged before acknowledged, newest first), each with what, whose, since when
// and its state; an operator acknowledges one with a note or clears it by hand (a viewer sees no buttons); then the
// history of cleared alarms. Polled every 5 s; an action refreshes the list and the header's counts at once.
import { useId, useState } from 'react';
import { ackAlarm, asApiError, clearAlarm, listAlarms, type Alarm, type ApiError, type Session } from '../api';
import { Badge, ErrorBox, Freshness, Loading, type Tone } from '../components/common';
import { ago, fmtDateTime, humanDuration } from '../format';
import { usePoll } from '../hooks';
import { POLL_MS } from './DevicesPage';

const HISTORY = 50;

const KIND_LABEL: Readonly<Record<string, string>> = {
  offline: 'Offline',
  battery_low: 'Battery low',
  severity: 'Severity',
  backlog: 'Sink backlog',
  failing: 'Sink failing',
};

const STATE_TONE: Readonly<Record<string, Tone>> = { raised: 'bad', acknowledged: 'warn', cleared: 'ok' };

/** A person's name from an actor (`api:olga` is the token named olga), the full actor in the tooltip. */
function Actor({ actor }: { actor: string | undefined }) {
  if (actor === undefined) return <>?</>;
  return <span title={actor}>{actor.replace(/^api:/, '')}</span>;
}

export function kindLabel(a: Pick<Alarm, 'kind' | 'aspect'>): string {
  const k = KIND_LABEL[a.kind] ?? a.kind;
  return a.aspect ? `${k}: ${a.aspect}` : k;
}

function Subject({ a }: { a: Alarm }) {
  if (a.subjectKind === 'device') {
    return (
      <a href={`#/devices/${encodeURIComponent(a.subject)}`} className="mono" data-testid="alarm-subject">
        {a.subject}
      </a>
    );
  }
  return (
    <a href="#/sinks" data-testid="alarm-subject">
      sink <span className="mono">{a.subject}</span>
    </a>
  );
}

function OpenAlarm({ a, canOperate, onChanged }: { a: Alarm; canOperate: boolean; onChanged: (a: Alarm) => void }) {
  const noteId = useId();
  const [note, setNote] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const now = Date.now();

  const act = async (what: 'ack' | 'clear'): Promise<void> => {
    setBusy(true);
    setError(undefined);
    try {
      const updated = what === 'ack' ? await ackAlarm(a.id, note) : await clearAlarm(a.id, note);
      setNote('');
      onChanged(updated);
    } catch (e) {
      setError(asApiError(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <li className={`alarm card sev-${a.severity} state-${a.state}`} data-testid="alarm" data-alarm={a.id} data-state={a.state} data-kind={a.kind} data-subject={a.subject}>
      <div className="alarm-top">
        <span className="alarm-kind">
          <Badge tone={a.severity === 'critical' ? 'bad' : 'warn'} title={`severity ${a.severity}`}>
            {kindLabel(a)}
          </Badge>{' '}
          <Subject a={a} />
        </span>
        <Badge tone={STATE_TONE[a.state] ?? 'info'}>
          <span data-testid="alarm-state">{a.state}</span>
        </Badge>
      </div>
      <p className="alarm-message">{a.message}</p>
      <p className="muted small">
        <span title={fmtDateTime(a.raisedAt)}>since {fmtDateTime(a.raisedAt)} ({humanDuration(now - a.raisedAt)})</span>
        {a.acknowledgedAt !== undefined ? (
          <span data-testid="alarm-ack">
            {' · '}acknowledged by <Actor actor={a.acknowledgedBy} /> <span title={fmtDateTime(a.acknowledgedAt)}>{ago(a.acknowledgedAt, now)}</span>
          </span>
        ) : null}
      </p>
      {a.note ? (
        <p className="alarm-note" data-testid="alarm-note">
          Note: {a.note}
        </p>
      ) : null}
      {canOperate ? (
        <form
          className="alarm-actions"
          onSubmit={(e) => {
            e.preventDefault();
            void act(a.state === 'raised' ? 'ack' : 'clear');
          }}
        >
          <label htmlFor={noteId} className="visually-hidden">
            Note for {kindLabel(a)} of {a.subject}
          </label>
          <input id={noteId} type="text" value={note} maxLength={1000} placeholder="Note (optional), e.g. battery ordered" onChange={(e) => setNote(e.target.value)} data-testid="alarm-note-input" />
          {a.state === 'raised' ? (
            <button type="button" className="btn primary" disabled={busy} onClick={() => void act('ack')} data-testid="alarm-ack-button">
              Acknowledge
            </button>
          ) : null}
          <button type="button" className="btn" disabled={busy} onClick={() => void act('clear')} data-testid="alarm-clear-button" title="Clear by hand: the condition is over or not worth an alarm">
            Clear
          </button>
        </form>
      ) : null}
      {error ? <ErrorBox error={error} title={`Not ${a.state === 'raised' ? 'acknowledged' : 'cleared'}`} /> : null}
    </li>
  );
}

function History({ items }: { items: readonly Alarm[] }) {
  if (!items.length) return <p className="muted">No cleared alarms yet.</p>;
  return (
    <table className="table responsive" data-testid="alarm-history">
      <thead>
        <tr>
          <th scope="col">Alarm</th>
          <th scope="col">Subject</th>
          <th scope="col">Raised</th>
          <th scope="col">Cleared</th>
          <th scope="col">Acknowledged</th>
        </tr>
      </thead>
      <tbody>
        {items.map((a) => (
          <tr key={a.id} data-testid="cleared-alarm" data-alarm={a.id} data-kind={a.kind} data-subject={a.subject}>
            <td data-label="Alarm">
              <span title={a.message}>{kindLabel(a)}</span>
            </td>
            <td data-label="Subject">
              <Subject a={a} />
            </td>
            <td data-label="Raised">{fmtDateTime(a.raisedAt)}</td>
            <td data-label="Cleared">
              <span>
                {a.clearedAt !== undefined ? fmtDateTime(a.clearedAt) : '-'}
                {a.clearedAt !== undefined ? <span className="muted small"> after {humanDuration(a.clearedAt - a.raisedAt)}</span> : null}
                {a.clearedBy && a.clearedBy !== 'condition' ? (
                  <span className="muted small">
                    {' '}
                    by <Actor actor={a.clearedBy} />
                  </span>
                ) : null}
              </span>
            </td>
            <td data-label="Acknowledged">
              {a.acknowledgedAt !== undefined ? (
                <span>
                  <Actor actor={a.acknowledgedBy} />
                  {a.note ? <span className="muted small">: {a.note}</span> : null}
                </span>
              ) : (
                <span className="muted">no</span>
              )}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function AlarmsPage({ session, onChanged }: { session: Session; onChanged: () => void }) {
  const canOperate = session.role === 'operator' || session.role === 'admin';
  const open = usePoll((signal) => listAlarms({ state: 'open', limit: 500 }, signal), POLL_MS, []);
  const cleared = usePoll((signal) => listAlarms({ state: 'cleared', limit: HISTORY }, signal), POLL_MS, []);
  // Unacknowledged first, then newest first.
  const items = [...(open.data ?? [])].sort((a, b) => Number(a.state !== 'raised') - Number(b.state !== 'raised') || b.raisedAt - a.raisedAt);
  const raised = items.filter((a) => a.state === 'raised').length;

  const changed = (a: Alarm): void => {
    open.setData((old) => (a.state === 'cleared' ? old?.filter((o) => o.id !== a.id) : old?.map((o) => (o.id === a.id ? a : o))));
    open.refresh();
    cleared.refresh();
    onChanged();
  };

  return (
    <section aria-labelledby="alarms-title">
      <div className="page-head">
        <h1 id="alarms-title">Alarms</h1>
        <Freshness updatedAt={open.updatedAt} error={open.error} loading={open.loading} />
      </div>
      <section aria-labelledby="open-title">
        <h2 id="open-title" className="section-title">
          Open{' '}
          {open.data ? (
            <span className="muted" data-testid="open-count">
              ({items.length}
              {items.length ? (raised ? `, ${raised} not acknowledged` : ', all acknowledged') : ''})
            </span>
          ) : null}
        </h2>
        {open.error && !open.data ? <ErrorBox error={open.error} title="Alarms could not be loaded" onRetry={open.refresh} /> : null}
        {!open.data && !open.error ? <Loading what="alarms" /> : null}
        {open.data && !items.length ? <p className="empty-state">No open alarms: every device and sink is fine.</p> : null}
        {items.length ? (
          <ul className="alarms" data-testid="open-alarms">
            {items.map((a) => (
              <OpenAlarm key={a.id} a={a} canOperate={canOperate} onChanged={changed} />
            ))}
          </ul>
        ) : null}
      </section>
      <section className="card" aria-labelledby="history-title">
        <h2 id="history-title">History</h2>
        <p className="help">The last {HISTORY} cleared alarms, newest first.</p>
        {cleared.error && !cleared.data ? <ErrorBox error={cleared.error} title="History could not be loaded" onRetry={cleared.refresh} /> : null}
        {cleared.data ? <History items={cleared.data} /> : null}
      </section>
    </section>
  );
}
