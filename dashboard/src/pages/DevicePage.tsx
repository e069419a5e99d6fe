// One device: what it is, its latest values and recent readings (charts), its orders, its config (form from its
// type's schema), its status JSON and its audit trail. The device and its latest values are polled every 5 s, the
// charts every minute.
import { useId, useState, type ReactNode } from 'react';
import {
  asApiError,
  getDevice,
  getLatest,
  getReadings,
  listAlarms,
  setDeviceEnabled,
  type ApiError,
  type Command,
  type DeviceDetail,
  type DeviceType,
  type Session,
} from '../api';
import { Badge, ErrorBox, Freshness, JsonBlock, LivenessBadge, Loading, type Tone } from '../components/common';
import { ConfigForm } from '../components/ConfigForm';
import { LineChart } from '../components/LineChart';
import { OrdersPanel } from '../components/OrdersPanel';
import { ago, BATTERY, displayScale, fmtDateTime, fmtLocation, fmtMeasured, fmtRadio, humanDuration, livenessOf, unitTitle } from '../format';
import { usePoll } from '../hooks';
import { POLL_MS } from './DevicesPage';

const HOUR = 3_600_000;
/** The default period: from the first stored reading to now, so minutes of data fill the chart (at most 7 days). */
const FIT = 0;
const FIT_MAX_MS = 7 * 24 * HOUR;
const RANGES = [
  { label: 'all data (fit)', ms: FIT },
  { label: 'last hour', ms: HOUR },
  { label: 'last 6 hours', ms: 6 * HOUR },
  { label: 'last 24 hours', ms: 24 * HOUR },
  { label: 'last 7 days', ms: 7 * 24 * HOUR },
] as const;
/** Points per chart: one per step. */
const POINTS = 240;
const CHART_POLL_MS = 60_000;

const COMMAND_TONE: Readonly<Record<string, Tone>> = { sent: 'info', acknowledged: 'ok', failed: 'bad', expired: 'warn' };

/** The median gap between points: the line breaks only at gaps well beyond the device's own cadence. */
function cadence(points: readonly { ts: number }[]): number {
  const gaps: number[] = [];
  for (let i = 1; i < points.length; i++) gaps.push(points[i]!.ts - points[i - 1]!.ts);
  gaps.sort((a, b) => a - b);
  return gaps[Math.floor(gaps.length / 2)] ?? 0;
}

function Chart({ device, measurement, unit, rangeMs }: { device: string; measurement: string; unit: string | undefined; rangeMs: number }) {
  const readings = usePoll(
    async (signal) => {
      const now = Date.now();
      let from = now - rangeMs;
      let to = now;
      if (rangeMs === FIT) {
        // First stored reading (oldest first, one row) to the newest: the data's own time range, padded a little.
        const [first] = await getReadings({ device, measurement, limit: 1 }, signal);
        const newest = (await getLatest(device, signal)).find((v) => v.measurement === measurement)?.ts ?? now;
        const start = Math.max(first?.ts ?? now - HOUR, newest - FIT_MAX_MS);
        const span = Math.max(60_000, newest - start);
        from = start - span * 0.02;
        to = newest + span * 0.02;
      }
      const step = Math.max(1000, Math.round((to - from) / POINTS));
      const items = await getReadings({ device, measurement, from: Math.floor(from), to: Math.ceil(to), step }, signal);
      return { from, to, step, items };
    },
    CHART_POLL_MS,
    [device, measurement, rangeMs],
  );
  if (readings.error && !readings.data) return <ErrorBox error={readings.error} title={`Readings of ${measurement}`} onRetry={readings.refresh} />;
  if (!readings.data) return <Loading what={`${measurement} readings`} />;
  const { from, to, step, items } = readings.data;
  const u = unit ?? items.find((r) => r.unit !== undefined)?.unit;
  const scale = displayScale(u);
  const points = items
    .filter((r) => r.measurement === measurement && typeof r.value === 'number' && Number.isFinite(r.value))
    .map((r) => ({ ts: r.ts, value: (r.value as number) * scale }))
    .sort((a, b) => a.ts - b.ts);
  return <LineChart title={measurement} unit={u} points={points} from={from} to={to} step={Math.max(step, cadence(points))} />;
}

const STATE_TONE: Readonly<Record<string, Tone>> = { INIT: 'off', ACTIVE: 'ok', BLOCKED: 'bad' };
const MODE_TONE: Readonly<Record<string, Tone>> = { NORMAL: 'ok', WARNING: 'warn', DANGER: 'bad' };

function Attributes({ d, type }: { d: DeviceDetail; type: DeviceType | undefined }) {
  const rows: Array<[string, ReactNode]> = [
    ['Id', <code key="id">{d.id}</code>],
    ['Id kind', d.kind],
    ['Type', type ? <span title={type.description}>{d.type}</span> : d.type],
    ['Location', fmtLocation(d.location)],
    ['Description', d.description || <span className="muted">none</span>],
    ['Enabled', d.enabled ? 'yes' : 'no'],
    [
      'State',
      <span key="state" data-testid="device-state">
        <Badge tone={STATE_TONE[d.state] ?? 'info'}>{d.state}</Badge>
        {d.blockedReason ? <span className="bad-text"> {d.blockedReason}</span> : null}
      </span>,
    ],
    ...(d.mode !== undefined
      ? ([
          [
            'Mode',
            <span key="mode" data-testid="device-mode">
              <Badge tone={MODE_TONE[d.mode] ?? 'info'}>{d.mode}</Badge>
            </span>,
          ],
        ] as Array<[string, ReactNode]>)
      : []),
    ['Last seen', d.lastSeen !== undefined ? `${ago(d.lastSeen)} (${fmtDateTime(d.lastSeen)})` : 'never'],
    ['Silent after', d.thresholds.maxSilentMs !== undefined ? humanDuration(d.thresholds.maxSilentMs) : <span className="muted">no threshold</span>],
    ['Battery floor', d.thresholds.batteryFloor !== undefined ? `${d.thresholds.batteryFloor} V` : <span className="muted">none</span>],
    ['Tags', d.tags.length ? d.tags.join(', ') : <span className="muted">none</span>],
    ['MQTT login', d.username ? <code key="u">{d.username}</code> : <span className="muted">none</span>],
    [
      'Password handed out',
      d.passwordIssued
        ? d.claim.claimedAt !== undefined
          ? `yes, to a bootstrap call from ${d.claim.claimedBy ?? '?'} (${fmtDateTime(d.claim.claimedAt)})`
          : 'yes'
        : d.claim.open && d.claim.until !== undefined
          ? `no: its claim window is open until ${fmtDateTime(d.claim.until)}`
          : 'no (waits for its bootstrap call once an operator opens its claim window)',
    ],
    ['Claim code', d.claim.code ? 'set (only its hash is kept)' : <span className="muted">none</span>],
    ['Declared in', d.source === 'config' ? 'the config file (read-only here)' : 'the registry'],
  ];
  const l = d.lorawan;
  if (l) {
    const app = [l.applicationId, l.tenant].filter((x) => x !== undefined).join('@');
    rows.push(['Network server', <span key="ns" data-testid="lorawan-ns">{`${l.ns} via input ${l.input}${app ? `, application ${app}` : ''}${l.deviceId ? `, device ${l.deviceId}` : ''}`}</span>]);
    rows.push(['Signal', <span key="sig" data-testid="lorawan-signal">{fmtRadio(l) || <span className="muted">not reported</span>}</span>]);
    rows.push([
      'Battery',
      <span key="bat" data-testid="lorawan-battery">
        {l.battery !== undefined ? `${l.battery}%` : <span className="muted">not reported (or on external power)</span>}
        {l.margin !== undefined ? `, link margin ${l.margin} dB` : ''}
      </span>,
    ]);
    rows.push(['Last uplink', `${ago(l.at)} (${fmtDateTime(l.at)})${l.fCnt !== undefined ? `, frame ${l.fCnt}` : ''}${l.fPort !== undefined ? ` on port ${l.fPort}` : ''}`]);
  }
  if (d.topics) {
    rows.push(['Status topic', <code key="st">{d.topics.status}</code>]);
    rows.push(['Command topic', <code key="ct">{d.topics.command}</code>]);
  }
  return (
    <dl className="attrs">
      {rows.map(([k, v]) => (
        <div key={k}>
          <dt>{k}</dt>
          <dd>{v}</dd>
        </div>
      ))}
    </dl>
  );
}

function LatestAndCharts({ id, batteryFloor }: { id: string; batteryFloor: number | undefined }) {
  const rangeId = useId();
  const [rangeMs, setRangeMs] = useState<number>(FIT);
  const latest = usePoll((signal) => getLatest(id, signal), POLL_MS, [id]);
  const numeric = (latest.data ?? []).filter((v) => typeof v.value === 'number');
  return (
    <>
      <section className="card" aria-labelledby="latest-title">
        <h2 id="latest-title">Latest values</h2>
        {latest.error && !latest.data ? <ErrorBox error={latest.error} onRetry={latest.refresh} /> : null}
        {!latest.data && !latest.error ? <Loading what="latest values" /> : null}
        {latest.data && !latest.data.length ? <p className="muted">No readings stored for this device yet.</p> : null}
        {latest.data?.length ? (
          <table className="table responsive" data-testid="latest">
            <thead>
              <tr>
                <th scope="col">Measurement</th>
                <th scope="col">Value</th>
                <th scope="col">When</th>
                <th scope="col">Sent by</th>
              </tr>
            </thead>
            <tbody>
              {latest.data.map((v) => {
                const low = v.measurement === BATTERY && batteryFloor !== undefined && typeof v.value === 'number' && v.value < batteryFloor;
                return (
                <tr key={v.measurement}>
                  <th scope="row" data-label="Measurement">
                    {v.measurement}
                  </th>
                  <td data-label="Value" className={`num${low ? ' bad-text' : ''}`} title={unitTitle(v.unit)} data-testid={`latest-${v.measurement}`}>
                    {fmtMeasured(v.value, v.unit)}
                    {low ? ` (under its ${batteryFloor} V floor)` : ''}
                  </td>
                  <td data-label="When" title={fmtDateTime(v.ts)}>
                    {ago(v.ts)}
                  </td>
                  <td data-label="Sent by" data-authenticated={String(v.authenticated)}>
                    {v.authenticated ? (
                      <Badge tone="ok" title="Sent over the device's own login to the broker">
                        the device (authenticated)
                      </Badge>
                    ) : (
                      <Badge tone="off" title="Not proved by the device's own login: a gateway forwarded it, or it came from the radio, HTTP, an external broker or an anonymous client">
                        not authenticated
                      </Badge>
                    )}
                  </td>
                </tr>
                );
              })}
            </tbody>
          </table>
        ) : null}
      </section>

      <section className="card" aria-labelledby="charts-title">
        <div className="section-head">
          <h2 id="charts-title">Recent readings</h2>
          <div className="field compact inline">
            <label htmlFor={rangeId}>Period</label>
            <select id={rangeId} value={rangeMs} onChange={(e) => setRangeMs(Number(e.target.value))}>
              {RANGES.map((r) => (
                <option key={r.ms} value={r.ms}>
                  {r.label}
                </option>
              ))}
            </select>
          </div>
        </div>
        {latest.data && !numeric.length ? <p className="muted">No numeric measurements to chart.</p> : null}
        <div className="charts">
          {numeric.map((v) => (
            <Chart key={`${v.measurement}:${rangeMs}`} device={id} measurement={v.measurement} unit={v.unit} rangeMs={rangeMs} />
          ))}
        </div>
      </section>
    </>
  );
}

function Commands({ commands }: { commands: readonly Command[] }) {
  if (!commands.length) return <p className="muted">No orders sent to this device yet.</p>;
  return (
    <table className="table responsive" data-testid="commands">
      <thead>
        <tr>
          <th scope="col">Sent</th>
          <th scope="col">Order</th>
          <th scope="col">Status</th>
          <th scope="col">By</th>
          <th scope="col">Result</th>
        </tr>
      </thead>
      <tbody>
        {commands.map((c) => (
          <tr key={c.id} data-testid="command" data-status={c.status}>
            <td data-label="Sent" title={fmtDateTime(c.sentAt)}>
              {ago(c.sentAt)}
            </td>
            <td data-label="Order">
              <span>
                <strong>{c.order}</strong>
                {Object.keys(c.params).length ? <code className="params-inline"> {JSON.stringify(c.params)}</code> : null}
              </span>
            </td>
            <td data-label="Status">
              <span>
                <Badge tone={COMMAND_TONE[c.status] ?? 'info'}>{c.status}</Badge>
                {c.doneAt !== undefined ? <span className="muted small" title={fmtDateTime(c.doneAt)}> {ago(c.doneAt)}</span> : null}
              </span>
            </td>
            <td data-label="By">{c.actor}</td>
            <td data-label="Result">{c.result !== undefined ? <code className="params-inline">{JSON.stringify(c.result)}</code> : <span className="muted">-</span>}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function DevicePage({ id, session, types, typesError }: { id: string; session: Session; types: readonly DeviceType[] | undefined; typesError: ApiError | undefined }) {
  const canOperate = session.role === 'operator' || session.role === 'admin';
  const device = usePoll((signal) => getDevice(id, signal), POLL_MS, [id]);
  const alarms = usePoll((signal) => listAlarms({ state: 'open', subjectKind: 'device', subject: id }, signal), POLL_MS, [id]);
  const [toggling, setToggling] = useState(false);
  const [actionError, setActionError] = useState<ApiError | undefined>(undefined);

  const d = device.data;
  if (!d) {
    return (
      <section>
        <p>
          <a href="#/devices">← All devices</a>
        </p>
        <h1 className="device-title">{id}</h1>
        {device.error ? <ErrorBox error={device.error} title="This device could not be loaded" onRetry={device.refresh} /> : <Loading what="the device" />}
      </section>
    );
  }
  const type = types?.find((t) => t.name === d.type);
  const liveness = livenessOf(d.liveness);

  const toggle = async (): Promise<void> => {
    setToggling(true);
    setActionError(undefined);
    try {
      const updated = await setDeviceEnabled(d.id, !d.enabled);
      device.setData((old) => (old ? { ...old, ...updated } : old));
      device.refresh();
    } catch (e) {
      setActionError(asApiError(e));
    } finally {
      setToggling(false);
    }
  };

  return (
    <section aria-labelledby="device-title" data-testid="device-page" data-liveness={d.liveness}>
      <p className="back">
        <a href="#/devices">← All devices</a>
      </p>
      <div className="page-head">
        <div>
          <h1 id="device-title" className="device-title">
            {d.id} <LivenessBadge liveness={liveness} />
          </h1>
          {d.description ? <p className="muted">{d.description}</p> : null}
        </div>
        <Freshness updatedAt={device.updatedAt} error={device.error} loading={device.loading} />
      </div>

      {alarms.data?.length ? (
        <ul className="device-alarms" data-testid="device-alarms">
          {alarms.data.map((a) => (
            <li key={a.id}>
              <Badge tone={a.state === 'raised' ? 'bad' : 'warn'}>{a.state === 'raised' ? 'alarm' : 'acknowledged'}</Badge> {a.message}{' '}
              <a href="#/alarms">{a.state === 'raised' && canOperate ? 'acknowledge…' : 'alarms'}</a>
            </li>
          ))}
        </ul>
      ) : null}

      {canOperate ? (
        <div className="actions">
          {d.enabled ? (
            <button type="button" className="btn" onClick={() => void toggle()} disabled={toggling} data-testid="device-disable">
              Disable device
            </button>
          ) : (
            <button type="button" className="btn" onClick={() => void toggle()} disabled={toggling} data-testid="device-enable">
              Enable device
            </button>
          )}
        </div>
      ) : null}
      {actionError ? <ErrorBox error={actionError} title={d.enabled ? 'Not disabled' : 'Not enabled'} /> : null}

      <div className="device-layout">
        <div className="col">
          <section className="card" aria-labelledby="attrs-title">
            <h2 id="attrs-title">Attributes</h2>
            <Attributes d={d} type={type} />
          </section>
          <LatestAndCharts id={d.id} batteryFloor={d.thresholds.batteryFloor} />
        </div>
        <div className="col">
          {canOperate ? (
            <section className="card" aria-labelledby="orders-title">
              <h2 id="orders-title">Orders</h2>
              {d.orders && !d.orders.accepted ? (
                // The device cannot take orders (a radio-only valve, a device that never connected): say why, offer none.
                <p className="help" data-testid="orders-refused">
                  This device takes no orders{d.orders.reason ? `: ${d.orders.reason}` : '.'}
                </p>
              ) : (
                <>
                  {d.orders?.via === 'mqtt' ? <p className="help">Orders go over MQTT.</p> : null}
                  <OrdersPanel
                    deviceId={d.id}
                    lorawan={d.orders?.via === 'lorawan'}
                    onSent={(c) => {
                      device.setData((old) => (old ? { ...old, commands: [c, ...old.commands.filter((o) => o.id !== c.id)] } : old));
                      device.refresh();
                    }}
                  />
                </>
              )}
            </section>
          ) : null}
          <section className="card" aria-labelledby="commands-title">
            <h2 id="commands-title">Recent orders</h2>
            <Commands commands={d.commands} />
          </section>
          <section className="card" aria-labelledby="config-title">
            <h2 id="config-title">Config</h2>
            {typesError && !types ? <ErrorBox error={typesError} title="Device types could not be loaded (no form)" /> : null}
            {types && !type ? (
              <p className="help">
                Type <code>{d.type}</code> is not known here: the config is edited as JSON.
              </p>
            ) : null}
            {type?.description ? <p className="help">{type.description}</p> : null}
            <ConfigForm
              key={`${d.id}:${type ? 'schema' : 'none'}`}
              deviceId={d.id}
              config={d.config}
              schema={type?.config}
              canEdit={canOperate}
              onSaved={(updated) => device.setData((old) => (old ? { ...old, ...updated } : old))}
            />
          </section>
          <section className="card" aria-labelledby="status-title">
            <h2 id="status-title">Status</h2>
            <JsonBlock value={d.lastStatus} summary="Last status JSON" open />
          </section>
          <section className="card" aria-labelledby="audit-title">
            <h2 id="audit-title">Audit</h2>
            {d.audit.length ? (
              <details>
                <summary>Last {d.audit.length} changes</summary>
                <ul className="audit">
                  {d.audit.map((a) => (
                    <li key={a.seq}>
                      <span className="muted" title={fmtDateTime(a.at)}>
                        {ago(a.at)}
                      </span>{' '}
                      <strong>{a.action}</strong> by {a.actor}
                      {a.result && a.result !== 'ok' ? <span className="warn-text"> ({a.result})</span> : null}
                      {a.detail ? <code className="params-inline"> {JSON.stringify(a.detail)}</code> : null}
                    </li>
                  ))}
                </ul>
              </details>
            ) : (
              <p className="muted">No changes recorded.</p>
            )}
          </section>
        </div>
      </div>
    </section>
  );
}
