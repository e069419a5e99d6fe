// What the API reads from a historian: readings over time (raw or downsampled), a device's latest values, stored
// events. The SQLite historian (src/sinks/sqlite) implements it; a sink type that keeps history says how to open its
// reader (`openHistory` in its definition), so the API and the hub never name a driver. Types only, no I/O.
import type { EventSeverity, Value } from './types.js';

/** A value now (SQLite, read on the caller's thread) or later (a database across the network). */
export type Awaitable<T> = T | Promise<T>;

export interface ReadingFilter {
  readonly device?: string;
  readonly measurement?: string;
  /** Inclusive, ms since the Unix epoch. */
  readonly from?: number;
  /** Exclusive, ms since the Unix epoch. */
  readonly to?: number;
}

export interface ReadingQuery extends ReadingFilter {
  /** At most this many rows; no limit when absent. */
  readonly limit?: number;
  /** By time; default `asc`. */
  readonly order?: 'asc' | 'desc';
}

export interface DownsampleQuery extends ReadingFilter {
  /** Bucket width, ms: one point per measurement and bucket, at the bucket's start. */
  readonly step: number;
  /** How a bucket's numeric values become one: average (default), minimum, maximum, or the newest. */
  readonly agg?: 'avg' | 'min' | 'max' | 'last';
  readonly limit?: number;
}

export interface HistorianPoint {
  measurement: string;
  ts: number;
  value: number;
  unit?: string;
  /** Every value in the bucket was authenticated (agg `last`: the newest one was). */
  authenticated: boolean;
}

export interface HistorianReading {
  device: string;
  ts: number;
  measurement: string;
  value: Value;
  unit?: string;
  seq?: number;
  /** The transport identity proved the device itself (its own login), not a gateway or an anonymous sender. */
  authenticated: boolean;
}

export interface EventQuery {
  readonly device?: string;
  readonly type?: string;
  readonly severity?: EventSeverity;
  /** Inclusive. */
  readonly from?: number;
  /** Exclusive. */
  readonly to?: number;
  readonly limit?: number;
  readonly order?: 'asc' | 'desc';
}

export interface HistorianEvent {
  ts: number;
  type: string;
  severity: EventSeverity;
  device?: string;
  message: string;
  data?: Record<string, Value>;
}

/** Read access to stored history. Every query is bounded by its `limit` or its time range. */
export interface HistoryReader {
  /** False once closed (or its file went away): the hub then opens it again. */
  readonly isOpen: boolean;
  queryReadings(q?: ReadingQuery): Awaitable<HistorianReading[]>;
  downsample(q: DownsampleQuery): Awaitable<HistorianPoint[]>;
  /** A device's newest value of each measurement. */
  latest(device: string): Awaitable<HistorianReading[]>;
  /** The newest value of each measurement of each of these devices (the device list's latest values), in any order. */
  latestMany(devices: readonly string[]): Awaitable<HistorianReading[]>;
  queryEvents(q?: EventQuery): Awaitable<HistorianEvent[]>;
  close(): void;
}
