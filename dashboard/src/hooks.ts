// Data loading hooks: poll an API call on an interval (paused while the tab is hidden), keep the last good answer
// when a refresh fails, and cancel what is in flight when the inputs change or the page goes away.
import { useCallback, useEffect, useRef, useState, type DependencyList, type RefObject } from 'react';
import { asApiError, isAbort, type ApiError } from './api';

export interface Polled<T> {
  readonly data: T | undefined;
  readonly error: ApiError | undefined;
  readonly loading: boolean;
  /** When the last good answer arrived (ms). */
  readonly updatedAt: number | undefined;
  /** Load again now (after an action changed what is shown). */
  readonly refresh: () => void;
  /** Replace the data with what an action answered, without waiting for the next poll. */
  readonly setData: (update: (old: T | undefined) => T | undefined) => void;
}

/**
 * Calls `load` now, and again `intervalMs` after each answer (0: once). A new call starts when `deps` change; the
 * previous one is aborted. While the tab is hidden nothing is polled; it loads at once when it is shown again.
 */
export function usePoll<T>(load: (signal: AbortSignal) => Promise<T>, intervalMs: number, deps: DependencyList): Polled<T> {
  const [data, setDataState] = useState<T | undefined>(undefined);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const [loading, setLoading] = useState(true);
  const [updatedAt, setUpdatedAt] = useState<number | undefined>(undefined);
  const loadRef = useRef(load);
  loadRef.current = load;
  const runRef = useRef<() => void>(() => undefined);

  useEffect(() => {
    let stopped = false;
    let generation = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let ctrl: AbortController | undefined;

    const run = async (): Promise<void> => {
      clearTimeout(timer);
      timer = undefined;
      ctrl?.abort();
      const mine = ++generation;
      const c = new AbortController();
      ctrl = c;
      setLoading(true);
      try {
        const d = await loadRef.current(c.signal);
        if (stopped || mine !== generation) return;
        setDataState(d);
        setError(undefined);
        setUpdatedAt(Date.now());
      } catch (e) {
        if (stopped || mine !== generation || isAbort(e)) return;
        setError(asApiError(e));
      }
      if (stopped || mine !== generation) return;
      setLoading(false);
      if (intervalMs > 0 && !document.hidden) timer = setTimeout(() => void run(), intervalMs);
    };
    const onVisibility = (): void => {
      if (!document.hidden && intervalMs > 0 && timer === undefined) void run();
    };
    runRef.current = () => void run();
    void run();
    document.addEventListener('visibilitychange', onVisibility);
    return () => {
      stopped = true;
      clearTimeout(timer);
      ctrl?.abort();
      document.removeEventListener('visibilitychange', onVisibility);
    };
    // The caller names what the load depends on (deps), as with useEffect.
  }, [intervalMs, ...deps]);

  const refresh = useCallback(() => runRef.current(), []);
  const setData = useCallback((update: (old: T | undefined) => T | undefined) => setDataState(update), []);
  return { data, error, loading, updatedAt, refresh, setData };
}

/** `value`, once it has stopped changing for `ms`. */
export function useDebounced<T>(value: T, ms: number): T {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setV(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return v;
}

/** The width of an element, in CSS pixels, following resizes. */
export function useWidth<E extends HTMLElement>(): [RefObject<E | null>, number] {
  const ref = useRef<E | null>(null);
  const [width, setWidth] = useState(0);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    setWidth(el.clientWidth);
    const ro = new ResizeObserver((entries) => {
      for (const e of entries) setWidth(Math.floor(e.contentRect.width));
    });
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  return [ref, width];
}

/** Re-renders every `ms`, for "3 min ago" texts that must age without new data. */
export function useNow(ms: number): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}
