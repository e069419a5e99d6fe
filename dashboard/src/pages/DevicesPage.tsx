// Every device with its liveness colour and label, battery, signal and key latest values, grouped by site, building
// and room; polled every 5 s (the list, then one `GET /latest` per 100 listed devices). Site, building, room and type
// filters and the search box go to the server as query parameters; the liveness chips, grouping and sort order act
// on what it answered.
import { useEffect, useId, useMemo, useState } from 'react';
import { getLatestMany, listDevices, type Device, type DeviceList, type DeviceType, type LatestValue, type Liveness, type Location } from '../api';
import { ErrorBox, Freshness, LivenessBadge, Loading } from '../components/common';
import { ago, BATTERY, fmtLocation, fmtMeasured, fmtRadio, isSignal, keyRank, LIVENESS_LABEL, LIVENESS_RANK, livenessOf, unitTitle } from '../format';
import { useDebounced, usePoll } from '../hooks';

export const POLL_MS = 5000;

export type SortOrder = 'problems' | 'id' | 'location';

export interface DeviceFiltersState {
  readonly site: string;
  readonly building: string;
  readonly room: string;
  readonly type: string;
  readonly search: string;
  readonly liveness: Liveness | '';
  readonly sort: SortOrder;
  /** Headings per site and building, the room on each card (default), or one list. */
  readonly group: boolean;
}

export const NO_FILTERS: DeviceFiltersState = { site: '', building: '', room: '', type: '', search: '', liveness: '', sort: 'problems', group: true };

/** Key values shown on a card besides battery and signal. */
const KEY_VALUES = 3;

interface Loaded {
  readonly list: DeviceList;
  /** Latest values by device id; undefined when the historian could not answer (the list still shows). */
  readonly latest: Map<string, LatestValue[]> | undefined;
}

const LIVENESS_ORDER: readonly Liveness[] = ['outdated', 'late', 'unknown', 'active', 'disabled'];

function locKey(l: Location): string {
  return JSON.stringify([l.site ?? '', l.building ?? '', l.room ?? '']);
}

function uniqSorted(values: Iterable<string>): string[] {
  return [...new Set([...values].filter((v) => v !== ''))].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
}

function sortDevices(items: readonly Device[], sort: SortOrder): Device[] {
  const byId = (a: Device, b: Device): number => a.id.localeCompare(b.id, undefined, { numeric: true });
  const out = [...items];
  if (sort === 'id') return out.sort(byId);
  if (sort === 'location') return out.sort((a, b) => fmtLocation(a.location).localeCompare(fmtLocation(b.location), undefined, { numeric: true }) || byId(a, b));
  return out.sort((a, b) => LIVENESS_RANK[livenessOf(a.liveness)] - LIVENESS_RANK[livenessOf(b.liveness)] || byId(a, b));
}

interface SelectProps {
  readonly label: string;
  readonly value: string;
  readonly options: readonly string[];
  readonly onChange: (v: string) => void;
  readonly testId: string;
}

function FilterSelect({ label, value, options, onChange, testId }: SelectProps) {
  const id = useId();
  const all = value !== '' && !options.includes(value) ? [value, ...options] : options;
  return (
    <div className="field compact">
      <label htmlFor={id}>{label}</label>
      <select id={id} value={value} onChange={(e) => onChange(e.target.value)} data-testid={testId}>
        <option value="">All</option>
        {all.map((o) => (
          <option key={o} value={o}>
            {o}
          </option>
        ))}
      </select>
    </div>
  );
}

function Measured({ v, className, testId }: { v: LatestValue; className?: string; testId?: string }) {
  return (
    <span className={className} title={unitTitle(v.unit)} data-testid={testId}>
      {fmtMeasured(v.value, v.unit)}
    </span>
  );
}

function DeviceCard({ d, now, latest, grouped }: { d: Device; now: number; latest: readonly LatestValue[] | undefined; grouped: boolean }) {
  const liveness = livenessOf(d.liveness);
  const values = latest ?? [];
  const battery = values.find((v) => v.measurement === BATTERY);
  const floor = d.thresholds.batteryFloor;
  const low = battery !== undefined && floor !== undefined && typeof battery.value === 'number' && battery.value < floor;
  const signal = values.filter((v) => isSignal(v.measurement));
  const keys = values
    .filter((v) => v.measurement !== BATTERY && !isSignal(v.measurement) && typeof v.value === 'number')
    .sort((a, b) => keyRank(a.measurement) - keyRank(b.measurement) || a.measurement.localeCompare(b.measurement))
    .slice(0, KEY_VALUES);
  return (
    <li>
      <a
        className={`device-card live-${liveness}`}
        href={`#/devices/${encodeURIComponent(d.id)}`}
        data-testid={`device-${d.id}`}
        data-liveness={d.liveness}
        aria-label={`${d.id}${d.description ? `, ${d.description}` : ''}: ${LIVENESS_LABEL[liveness]}${low ? ', battery low' : ''}`}
      >
        <div className="device-card-top">
          <span className="device-id">{d.id}</span>
          <LivenessBadge liveness={liveness} />
        </div>
        {d.description ? <div className="device-desc">{d.description}</div> : null}
        {keys.length ? (
          <ul className="key-values" aria-label="Latest values">
            {keys.map((v) => (
              <li key={v.measurement}>
                <span className="kv-name">{v.measurement}</span> <Measured v={v} className="kv-value" />
              </li>
            ))}
          </ul>
        ) : null}
        <dl className="device-meta">
          <div>
            <dt>{grouped ? 'Room' : 'Where'}</dt>
            <dd>{grouped ? d.location.room || <span className="muted">none</span> : fmtLocation(d.location)}</dd>
          </div>
          <div>
            <dt>Type</dt>
            <dd>{d.type}</dd>
          </div>
          <div>
            <dt>Last seen</dt>
            <dd title={d.lastSeen !== undefined ? new Date(d.lastSeen).toLocaleString() : undefined}>{ago(d.lastSeen, now)}</dd>
          </div>
          {battery ? (
            <div>
              <dt>Battery</dt>
              <dd data-testid="battery" data-low={String(low)}>
                <Measured v={battery} className={low ? 'bad-text' : undefined} />
                {low ? <span className="bad-text"> low (floor {floor} V)</span> : null}
              </dd>
            </div>
          ) : null}
          {!battery && d.lorawan?.battery !== undefined ? (
            <div>
              <dt>Battery</dt>
              <dd data-testid="battery" data-low="false">
                {d.lorawan.battery}%
              </dd>
            </div>
          ) : null}
          {!signal.length && d.lorawan && fmtRadio(d.lorawan) ? (
            <div>
              <dt>Signal</dt>
              <dd data-testid="signal">{fmtRadio(d.lorawan)}</dd>
            </div>
          ) : null}
          {signal.length ? (
            <div>
              <dt>Signal</dt>
              <dd data-testid="signal">
                {signal.map((v, i) => (
                  <span key={v.measurement}>
                    {i > 0 ? ', ' : ''}
                    {v.measurement} <Measured v={v} />
                  </span>
                ))}
              </dd>
            </div>
          ) : null}
        </dl>
        {!d.enabled || d.state === 'BLOCKED' ? (
          <div className="device-note">
            {!d.enabled ? 'disabled' : ''}
            {d.state === 'BLOCKED' ? `blocked${d.blockedReason ? `: ${d.blockedReason}` : ''}` : ''}
          </div>
        ) : null}
        {d.tags.length ? (
          <div className="tags">
            {d.tags.map((t) => (
              <span key={t} className="tag">
                {t}
              </span>
            ))}
          </div>
        ) : null}
      </a>
    </li>
  );
}

/**
 * Devices under one heading per site and building (a heading per room would often hold one device), by room within
 * it, then in the chosen order; locations in natural order, "no location" last.
 */
function groupByLocation(items: readonly Device[]): Array<{ key: string; title: string; devices: Device[] }> {
  const groups = new Map<string, { key: string; title: string; devices: Device[] }>();
  for (const d of items) {
    const where = { ...(d.location.site ? { site: d.location.site } : {}), ...(d.location.building ? { building: d.location.building } : {}) };
    const key = locKey(where);
    let g = groups.get(key);
    if (!g) {
      g = { key, title: where.site || where.building ? fmtLocation(where) : 'no site or building', devices: [] };
      groups.set(key, g);
    }
    g.devices.push(d);
  }
  const byRoom = (a: Device, b: Device): number => (a.location.room ?? '').localeCompare(b.location.room ?? '', undefined, { numeric: true });
  for (const g of groups.values()) g.devices.sort(byRoom); // stable: the chosen order within a room
  const none = locKey({});
  return [...groups.values()].sort((a, b) => Number(a.key === none) - Number(b.key === none) || a.title.localeCompare(b.title, undefined, { numeric: true }));
}

export function DevicesPage({
  filters,
  setFilters,
  types,
}: {
  filters: DeviceFiltersState;
  setFilters: (f: DeviceFiltersState) => void;
  types: readonly DeviceType[] | undefined;
}) {
  const searchId = useId();
  const sortId = useId();
  const search = useDebounced(filters.search, 300);
  const q = { site: filters.site, building: filters.building, room: filters.room, type: filters.type, search };
  const qKey = JSON.stringify(q);
  const loaded = usePoll(
    async (signal): Promise<Loaded> => {
      const l = await listDevices(q, signal);
      let latest: Map<string, LatestValue[]> | undefined;
      try {
        latest = l.items.length ? await getLatestMany(l.items.map((d) => d.id), signal) : new Map<string, LatestValue[]>();
      } catch (e) {
        if (signal.aborted) throw e;
        latest = undefined; // no historian (503) or a failed call: the list itself is still worth showing
      }
      return { list: l, latest };
    },
    POLL_MS,
    [qKey],
  );
  const list = { ...loaded, data: loaded.data?.list };
  const latest = loaded.data?.latest;

  // Every location and type seen in any answer, so filtering by one site does not hide the others from the selects.
  const [seen, setSeen] = useState<{ locations: Map<string, Location>; types: Set<string> }>(() => ({ locations: new Map(), types: new Set() }));
  useEffect(() => {
    const items = list.data?.items;
    if (!items) return;
    setSeen((old) => {
      let changed = false;
      const locations = new Map(old.locations);
      const typeNames = new Set(old.types);
      for (const d of items) {
        const k = locKey(d.location);
        if (!locations.has(k)) {
          locations.set(k, d.location);
          changed = true;
        }
        if (!typeNames.has(d.type)) {
          typeNames.add(d.type);
          changed = true;
        }
      }
      return changed ? { locations, types: typeNames } : old;
    });
  }, [list.data]);

  const locs = [...seen.locations.values()];
  const sites = uniqSorted(locs.map((l) => l.site ?? ''));
  const inSite = locs.filter((l) => !filters.site || l.site === filters.site);
  const buildings = uniqSorted(inSite.map((l) => l.building ?? ''));
  const rooms = uniqSorted(inSite.filter((l) => !filters.building || l.building === filters.building).map((l) => l.room ?? ''));
  const typeNames = uniqSorted([...(types ?? []).map((t) => t.name), ...seen.types]);

  const items = useMemo(() => list.data?.items ?? [], [list.data]);
  const counts = useMemo(() => {
    const c: Record<Liveness, number> = { active: 0, late: 0, outdated: 0, disabled: 0, unknown: 0 };
    for (const d of items) c[livenessOf(d.liveness)]++;
    return c;
  }, [items]);
  const shown = useMemo(
    () => sortDevices(filters.liveness ? items.filter((d) => livenessOf(d.liveness) === filters.liveness) : items, filters.sort),
    [items, filters.liveness, filters.sort],
  );
  const set = (patch: Partial<DeviceFiltersState>): void => setFilters({ ...filters, ...patch });
  const anyFilter = filters.site || filters.building || filters.room || filters.type || filters.search || filters.liveness;
  const now = list.updatedAt ?? Date.now();

  return (
    <section aria-labelledby="devices-title">
      <div className="page-head">
        <h1 id="devices-title">Devices</h1>
        <Freshness updatedAt={list.updatedAt} error={list.error} loading={list.loading} />
      </div>

      <form className="filters" role="search" aria-label="Filter devices" onSubmit={(e) => e.preventDefault()}>
        <div className="field compact grow">
          <label htmlFor={searchId}>Search</label>
          <input
            id={searchId}
            type="search"
            value={filters.search}
            placeholder="id, description, tag…"
            onChange={(e) => set({ search: e.target.value })}
            data-testid="filter-search"
          />
        </div>
        <FilterSelect label="Site" value={filters.site} options={sites} onChange={(site) => set({ site, building: '', room: '' })} testId="filter-site" />
        <FilterSelect label="Building" value={filters.building} options={buildings} onChange={(building) => set({ building, room: '' })} testId="filter-building" />
        <FilterSelect label="Room" value={filters.room} options={rooms} onChange={(room) => set({ room })} testId="filter-room" />
        <FilterSelect label="Type" value={filters.type} options={typeNames} onChange={(type) => set({ type })} testId="filter-type" />
        <div className="field compact">
          <label htmlFor={sortId}>Sort</label>
          <select id={sortId} value={filters.sort} onChange={(e) => set({ sort: e.target.value as SortOrder })}>
            <option value="problems">Problems first</option>
            <option value="id">Id</option>
            <option value="location">Location</option>
          </select>
        </div>
        <label className="check compact">
          <input type="checkbox" checked={filters.group} onChange={(e) => set({ group: e.target.checked })} data-testid="group-by-location" /> Group by building
        </label>
        {anyFilter ? (
          <button type="button" className="btn link" onClick={() => setFilters({ ...NO_FILTERS, sort: filters.sort, group: filters.group })}>
            Clear filters
          </button>
        ) : null}
      </form>

      {list.data ? (
        <div className="summary" role="group" aria-label="Show only devices that are">
          {LIVENESS_ORDER.map((l) => (
            <button
              key={l}
              type="button"
              className={`chip live-${l}`}
              aria-pressed={filters.liveness === l}
              onClick={() => set({ liveness: filters.liveness === l ? '' : l })}
              data-testid={`count-${l}`}
            >
              <span className="dot" aria-hidden="true" />
              {LIVENESS_LABEL[l]} <strong>{counts[l]}</strong>
            </button>
          ))}
        </div>
      ) : null}

      {list.error && !list.data ? <ErrorBox error={list.error} title="Devices could not be loaded" onRetry={list.refresh} /> : null}
      {!list.data && !list.error ? <Loading what="devices" /> : null}

      {list.data ? (
        <>
          <p className="muted count-line" aria-live="polite">
            {shown.length === items.length ? `${items.length} device${items.length === 1 ? '' : 's'}` : `${shown.length} of ${items.length} devices`}
            {list.data.total > items.length ? ` (the first ${items.length} of ${list.data.total}: narrow the filters to see the rest)` : ''}
          </p>
          {shown.length && filters.group ? (
            <div data-testid="device-list">
              {groupByLocation(shown).map((g) => (
                <section key={g.key} className="device-group" aria-label={g.title}>
                  <h2 className="group-title">
                    {g.title} <span className="muted">({g.devices.length})</span>
                  </h2>
                  <ul className="device-grid">
                    {g.devices.map((d) => (
                      <DeviceCard key={d.id} d={d} now={now} latest={latest?.get(d.id)} grouped />
                    ))}
                  </ul>
                </section>
              ))}
            </div>
          ) : shown.length ? (
            <ul className="device-grid" data-testid="device-list">
              {shown.map((d) => (
                <DeviceCard key={d.id} d={d} now={now} latest={latest?.get(d.id)} grouped={false} />
              ))}
            </ul>
          ) : (
            <p className="empty-state">{anyFilter ? 'No device matches these filters.' : 'No devices yet.'}</p>
          )}
        </>
      ) : null}
    </section>
  );
}
