// The dashboard: asks who is logged in, shows the login page or the app (header, navigation, pages), and returns to
// the login page whenever the API answers 401.
import { useCallback, useEffect, useRef, useState } from 'react';
import { ApiError, asApiError, getAlarmCounts, getSession, listDeviceTypes, logout, onUnauthorized, type AlarmCounts, type Session } from './api';
import { AlarmsPage } from './pages/AlarmsPage';
import { LoginPage } from './pages/LoginPage';
import { DevicesPage, NO_FILTERS, type DeviceFiltersState } from './pages/DevicesPage';
import { DevicePage } from './pages/DevicePage';
import { EventsPage } from './pages/EventsPage';
import { SinksPage } from './pages/SinksPage';
import { usePoll } from './hooks';
import { useHashRoute, type Route } from './route';

type Auth = { readonly state: 'checking' } | { readonly state: 'out'; readonly notice?: ApiError | string } | { readonly state: 'in'; readonly session: Session };

const TITLES: Readonly<Record<Route['page'], string>> = { devices: 'Devices', device: 'Device', alarms: 'Alarms', events: 'Events', sinks: 'Sinks' };
/** The header's alarm counts, on every page. */
const ALARM_POLL_MS = 5000;

/** "2 open" in red while any is unacknowledged, amber when all are acknowledged, a quiet "no alarms" otherwise. */
function AlarmBadge({ counts }: { counts: AlarmCounts | undefined }) {
  if (!counts) return null;
  const open = counts.raised + counts.acknowledged;
  const tone = counts.raised > 0 ? 'bad' : open > 0 ? 'warn' : 'ok';
  const title = open ? `${counts.raised} not acknowledged, ${counts.acknowledged} acknowledged` : 'No open alarms';
  return (
    <a
      href="#/alarms"
      className={`alarm-badge tone-${tone}`}
      title={title}
      aria-label={`Alarms: ${open ? `${open} open, ${title}` : 'none open'}`}
      data-testid="alarm-count"
      data-raised={counts.raised}
      data-open={open}
    >
      <span className="dot" aria-hidden="true" />
      {open ? `${open} open` : 'no alarms'}
    </a>
  );
}

export function App() {
  const [auth, setAuth] = useState<Auth>({ state: 'checking' });

  useEffect(() => {
    const ctrl = new AbortController();
    getSession(ctrl.signal).then(
      (s) => setAuth(s ? { state: 'in', session: s } : { state: 'out' }),
      (e: unknown) => {
        if (!ctrl.signal.aborted) setAuth({ state: 'out', notice: asApiError(e) });
      },
    );
    return () => ctrl.abort();
  }, []);

  useEffect(() => {
    onUnauthorized(() => setAuth((a) => (a.state === 'in' ? { state: 'out', notice: 'Your session has ended: log in again.' } : a)));
    return () => onUnauthorized(undefined);
  }, []);

  const doLogout = useCallback(async () => {
    try {
      await logout();
    } catch {
      // Logged out here either way; the cookie ends with the server's session.
    }
    setAuth({ state: 'out', notice: 'Logged out.' });
  }, []);

  if (auth.state === 'checking') {
    return (
      <main className="login" id="main">
        <p className="muted" role="status">
          Connecting to Backhaul…
        </p>
      </main>
    );
  }
  if (auth.state === 'out') {
    return <LoginPage notice={auth.notice} onLogin={(session) => setAuth({ state: 'in', session })} />;
  }
  return <Shell session={auth.session} onLogout={() => void doLogout()} />;
}

function NavLink({ href, current, children }: { href: string; current: boolean; children: string }) {
  return (
    <a href={href} aria-current={current ? 'page' : undefined} className={current ? 'current' : undefined}>
      {children}
    </a>
  );
}

function Shell({ session, onLogout }: { session: Session; onLogout: () => void }) {
  const route = useHashRoute();
  const [filters, setFilters] = useState<DeviceFiltersState>(NO_FILTERS);
  // Device types change only with a new Backhaul version or config: loaded once, again every 10 minutes.
  const types = usePoll((signal) => listDeviceTypes(signal), 600_000, []);
  const alarmCounts = usePoll((signal) => getAlarmCounts(signal), ALARM_POLL_MS, []);
  const mainRef = useRef<HTMLElement>(null);
  const firstRender = useRef(true);
  const routeKey = route.page === 'device' ? `device:${route.id}` : route.page;

  useEffect(() => {
    document.title = `${route.page === 'device' ? route.id : TITLES[route.page]} · Backhaul`;
    // Move focus to the new page for keyboard and screen reader users (not on the first load).
    if (firstRender.current) firstRender.current = false;
    else {
      mainRef.current?.focus({ preventScroll: true });
      window.scrollTo(0, 0);
    }
  }, [routeKey]);

  const section = route.page === 'device' ? 'devices' : route.page;

  return (
    <>
      <a className="skip" href="#main" onClick={(e) => { e.preventDefault(); mainRef.current?.focus(); }}>
        Skip to content
      </a>
      <header className="topbar">
        <a className="brand" href="#/devices" aria-label="Backhaul: devices">
          <span className="logo" aria-hidden="true">
            ◆
          </span>
          Backhaul
        </a>
        <nav aria-label="Main">
          <NavLink href="#/devices" current={section === 'devices'}>
            Devices
          </NavLink>
          <NavLink href="#/alarms" current={section === 'alarms'}>
            Alarms
          </NavLink>
          <NavLink href="#/events" current={section === 'events'}>
            Events
          </NavLink>
          <NavLink href="#/sinks" current={section === 'sinks'}>
            Sinks
          </NavLink>
        </nav>
        <AlarmBadge counts={alarmCounts.data} />
        <div className="who">
          <span className="who-name" data-testid="user-name" title={`Logged in as ${session.name}`}>
            {session.name}
          </span>
          <span className={`role role-${session.role}`} data-testid="user-role">
            {session.role}
          </span>
          <button type="button" className="btn small" onClick={onLogout} data-testid="logout" title={`Log out ${session.name} (${session.role})`}>
            Log out
          </button>
        </div>
      </header>
      <main id="main" ref={mainRef} tabIndex={-1}>
        {route.page === 'devices' ? <DevicesPage filters={filters} setFilters={setFilters} types={types.data} /> : null}
        {route.page === 'device' ? <DevicePage key={route.id} id={route.id} session={session} types={types.data} typesError={types.error} /> : null}
        {route.page === 'alarms' ? <AlarmsPage session={session} onChanged={alarmCounts.refresh} /> : null}
        {route.page === 'events' ? <EventsPage /> : null}
        {route.page === 'sinks' ? <SinksPage /> : null}
      </main>
    </>
  );
}
