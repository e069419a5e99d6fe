// Hash routing (`#/devices/ID`), so the server needs no fallback route and a reload keeps the page.
import { useEffect, useState } from 'react';

export type Route =
  | { readonly page: 'devices' }
  | { readonly page: 'device'; readonly id: string }
  | { readonly page: 'alarms' }
  | { readonly page: 'events' }
  | { readonly page: 'sinks' };

export function parseHash(hash: string): Route {
  const path = hash.replace(/^#/, '').split('?')[0] ?? '';
  const parts = path.split('/').filter((p) => p !== '');
  const [first, second] = parts;
  if (first === 'devices' && second !== undefined) {
    let id = second;
    try {
      id = decodeURIComponent(second);
    } catch {
      // Keep it as written.
    }
    return { page: 'device', id };
  }
  if (first === 'alarms') return { page: 'alarms' };
  if (first === 'events') return { page: 'events' };
  if (first === 'sinks') return { page: 'sinks' };
  return { page: 'devices' };
}

export function hrefOf(r: Route): string {
  return r.page === 'device' ? `#/devices/${encodeURIComponent(r.id)}` : `#/${r.page}`;
}

export function useHashRoute(): Route {
  const [route, setRoute] = useState<Route>(() => parseHash(window.location.hash));
  useEffect(() => {
    const onChange = (): void => setRoute(parseHash(window.location.hash));
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return route;
}
