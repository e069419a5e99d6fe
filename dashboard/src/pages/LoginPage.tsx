// Paste an API token; the server answers with a session cookie (httpOnly), so the token itself is kept nowhere.
import { useState, type FormEvent } from 'react';
import { asApiError, login, type ApiError, type Session } from '../api';
import { ErrorBox } from '../components/common';

export function LoginPage({ onLogin, notice }: { onLogin: (s: Session) => void; notice?: ApiError | string | undefined }) {
  const [token, setToken] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | undefined>(undefined);

  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    const t = token.trim();
    if (!t) return;
    setBusy(true);
    setError(undefined);
    try {
      const s = await login(t);
      setToken('');
      onLogin(s);
    } catch (err) {
      setError(asApiError(err));
      setBusy(false);
    }
  };

  return (
    <main className="login" id="main">
      <form className="card login-card" onSubmit={(e) => void submit(e)} aria-labelledby="login-title">
        <h1 id="login-title">
          <span className="logo" aria-hidden="true">
            ◆
          </span>{' '}
          Backhaul
        </h1>
        <p className="muted">Log in with an API token to see and manage devices.</p>
        {typeof notice === 'string' ? (
          <p className="notice" role="status">
            {notice}
          </p>
        ) : notice ? (
          <ErrorBox error={notice} title="Could not ask Backhaul who is logged in" />
        ) : null}
        <div className="field">
          <label htmlFor="token">API token</label>
          <input
            id="token"
            name="token"
            type="password"
            autoComplete="off"
            autoCapitalize="off"
            autoCorrect="off"
            spellCheck={false}
            placeholder="bh_…"
            value={token}
            onChange={(e) => setToken(e.target.value)}
            aria-describedby="token-help"
            data-testid="token"
            required
            autoFocus
          />
          <p id="token-help" className="help">
            A token from <code>backhaul tokens create</code>. It is sent once; the browser keeps only a session cookie.
          </p>
        </div>
        {error ? <ErrorBox error={error} title="Not logged in" /> : null}
        <button type="submit" className="btn primary wide" disabled={busy || !token.trim()} data-testid="login">
          {busy ? 'Logging in…' : 'Log in'}
        </button>
      </form>
    </main>
  );
}
