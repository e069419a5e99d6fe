// Where readings go and what waits to be delivered: `GET /sinks`, polled every 5 s.
import { listSinks, type SinkStatus } from '../api';
import { Badge, ErrorBox, Freshness, Loading, type Tone } from '../components/common';
import { ago, fmtDateTime, fmtNumber, humanBytes, humanDuration } from '../format';
import { usePoll } from '../hooks';
import { POLL_MS } from './DevicesPage';

const STATE_TONE: Readonly<Record<string, Tone>> = { up: 'ok', retrying: 'warn', starting: 'off', stopped: 'off', closed: 'off' };

function stateOf(s: SinkStatus): string {
  if (s.state) return s.state;
  if (s.up === true) return 'up';
  if (s.up === false) return 'down';
  return 'unknown';
}

export function SinksPage() {
  const sinks = usePoll((signal) => listSinks(signal), POLL_MS, []);
  const list = sinks.data ?? [];
  const waiting = list.reduce((n, s) => n + s.backlog, 0);
  return (
    <section aria-labelledby="sinks-title">
      <div className="page-head">
        <h1 id="sinks-title">Sinks</h1>
        <Freshness updatedAt={sinks.updatedAt} error={sinks.error} loading={sinks.loading} />
      </div>
      {sinks.error && !sinks.data ? <ErrorBox error={sinks.error} title="Sinks could not be loaded" onRetry={sinks.refresh} /> : null}
      {!sinks.data && !sinks.error ? <Loading what="sinks" /> : null}
      {sinks.data ? (
        <p className="muted count-line">
          {list.length} sink{list.length === 1 ? '' : 's'}; {waiting ? `${fmtNumber(waiting)} item${waiting === 1 ? '' : 's'} waiting to be delivered` : 'nothing waiting'}.
        </p>
      ) : null}
      {list.length ? (
        <table className="table responsive sinks" data-testid="sinks">
          <thead>
            <tr>
              <th scope="col">Sink</th>
              <th scope="col">State</th>
              <th scope="col" className="num">
                Backlog
              </th>
              <th scope="col" className="num">
                Bytes
              </th>
              <th scope="col" className="num">
                Oldest
              </th>
              <th scope="col" className="num">
                Delivered
              </th>
              <th scope="col" className="num">
                Retried
              </th>
              <th scope="col" className="num">
                Dropped
              </th>
              <th scope="col">Last error</th>
            </tr>
          </thead>
          <tbody>
            {list.map((s) => {
              const state = stateOf(s);
              return (
                <tr key={s.id} data-testid={`sink-${s.id}`} data-state={state}>
                  <th scope="row" data-label="Sink">
                    <span>
                      <strong>{s.id}</strong> <span className="muted small">{s.type}</span>
                    </span>
                  </th>
                  <td data-label="State">
                    <Badge tone={state === 'down' ? 'bad' : (STATE_TONE[state] ?? 'off')}>{state}</Badge>
                  </td>
                  <td data-label="Backlog" className={`num${s.backlog > 0 ? ' attention' : ''}`}>
                    {fmtNumber(s.backlog)}
                  </td>
                  <td data-label="Bytes" className="num">
                    {humanBytes(s.backlogBytes)}
                  </td>
                  <td data-label="Oldest" className="num">
                    {s.backlog > 0 ? humanDuration(s.oldestAgeMs) : '-'}
                  </td>
                  <td data-label="Delivered" className="num">
                    {fmtNumber(s.delivered)}
                  </td>
                  <td data-label="Retried" className="num">
                    {fmtNumber(s.retries)}
                  </td>
                  <td data-label="Dropped" className={`num${s.dropped > 0 ? ' attention' : ''}`}>
                    {fmtNumber(s.dropped)}
                  </td>
                  <td data-label="Last error" className="last-error">
                    {s.lastError ? (
                      <span>
                        <span title={fmtDateTime(s.lastError.at)} className="muted small">
                          {ago(s.lastError.at)}:
                        </span>{' '}
                        {s.lastError.message}
                      </span>
                    ) : (
                      <span className="muted">none</span>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      ) : sinks.data ? (
        <p className="empty-state">No sinks configured.</p>
      ) : null}
    </section>
  );
}
