// Small shared pieces: status badges, error boxes, the "updated at" line, pretty JSON.
import { useId, type ReactNode } from 'react';
import type { ApiError, JsonValue, Liveness } from '../api';
import { fmtTime, LIVENESS_HELP, LIVENESS_LABEL } from '../format';

/** Colour plus a text label, never colour alone. */
export function LivenessBadge({ liveness }: { liveness: Liveness }) {
  return (
    <span className={`badge live-${liveness}`} title={LIVENESS_HELP[liveness]}>
      <span className="dot" aria-hidden="true" />
      {LIVENESS_LABEL[liveness]}
    </span>
  );
}

export type Tone = 'ok' | 'warn' | 'bad' | 'off' | 'info';

export function Badge({ tone, children, title }: { tone: Tone; children: ReactNode; title?: string }) {
  return (
    <span className={`badge tone-${tone}`} title={title}>
      <span className="dot" aria-hidden="true" />
      {children}
    </span>
  );
}

/** An API error as the server said it: code, message, and the field at fault. */
export function ErrorBox({ error, title, onRetry }: { error: ApiError; title?: string; onRetry?: () => void }) {
  return (
    <div className="error-box" role="alert">
      {title ? <strong>{title}: </strong> : null}
      <code className="error-code">{error.code}</code> {error.message}
      {error.path ? (
        <>
          {' '}
          (<span className="error-path">{error.path}</span>)
        </>
      ) : null}
      {onRetry ? (
        <button type="button" className="btn small" onClick={onRetry}>
          Retry
        </button>
      ) : null}
    </div>
  );
}

/** "Updated 14:03:27", or the refresh error while older data stays on screen. */
export function Freshness({ updatedAt, error, loading }: { updatedAt: number | undefined; error: ApiError | undefined; loading: boolean }) {
  if (error && updatedAt !== undefined) {
    return (
      <p className="freshness stale" role="status">
        Refresh failed (<code>{error.code}</code> {error.message}); showing data from {fmtTime(updatedAt)}.
      </p>
    );
  }
  return (
    <p className="freshness" aria-live="off">
      {updatedAt !== undefined ? `Updated ${fmtTime(updatedAt)}` : loading ? 'Loading…' : ''}
    </p>
  );
}

/** Pretty-printed JSON in a collapsible block. */
export function JsonBlock({ value, summary, open = false }: { value: JsonValue | undefined; summary: ReactNode; open?: boolean }) {
  const id = useId();
  if (value === undefined) return <p className="muted">{summary}: none</p>;
  return (
    <details className="json" open={open}>
      <summary id={id}>{summary}</summary>
      <pre aria-labelledby={id}>{JSON.stringify(value, null, 2)}</pre>
    </details>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p className="muted" role="status">
      Loading {what}…
    </p>
  );
}
