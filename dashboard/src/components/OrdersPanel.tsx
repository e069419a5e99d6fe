// Orders to one device: Reboot, Reinstall, or a custom order (name + k=v parameters), each confirmed in a dialog,
// then `POST /devices/ID/commands {order, params}`.
import { useId, useState, type FormEvent } from 'react';
import { asApiError, sendCommand, type ApiError, type Command, type JsonObject } from '../api';
import { parseParams } from '../schemaForm';
import { ErrorBox } from './common';
import { ConfirmDialog } from './ConfirmDialog';

const ORDER = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;

interface Pending {
  readonly order: string;
  readonly params: JsonObject;
}

export function OrdersPanel({ deviceId, onSent }: { deviceId: string; onSent: (c: Command) => void }) {
  const id = useId().replace(/:/g, '');
  const [pending, setPending] = useState<Pending | undefined>(undefined);
  const [name, setName] = useState('');
  const [paramsText, setParamsText] = useState('');
  const [customError, setCustomError] = useState<string | undefined>(undefined);
  const [sending, setSending] = useState(false);
  const [result, setResult] = useState<{ ok: Command } | { err: ApiError } | undefined>(undefined);

  const ask = (order: string, params: JsonObject = {}): void => {
    setResult(undefined);
    setPending({ order, params });
  };

  const custom = (e: FormEvent): void => {
    e.preventDefault();
    const order = name.trim();
    if (!ORDER.test(order)) {
      setCustomError('Name the order: a letter, then letters, digits, _ . - (at most 64).');
      return;
    }
    const p = parseParams(paramsText);
    if (!p.params) {
      setCustomError(p.error);
      return;
    }
    setCustomError(undefined);
    ask(order, p.params);
  };

  const confirm = async (): Promise<void> => {
    const p = pending;
    if (!p) return;
    setPending(undefined);
    setSending(true);
    try {
      const c = await sendCommand(deviceId, p.order, p.params);
      setResult({ ok: c });
      onSent(c);
    } catch (e) {
      setResult({ err: asApiError(e) });
    } finally {
      setSending(false);
    }
  };

  return (
    <div className="orders">
      <div className="actions">
        <button type="button" className="btn" data-testid="order-reboot" disabled={sending} onClick={() => ask('reboot')}>
          Reboot
        </button>
        <button type="button" className="btn warn" data-testid="order-reinstall" disabled={sending} onClick={() => ask('reinstall')}>
          Reinstall
        </button>
      </div>
      <form className="custom-order" onSubmit={custom} aria-label="Custom order" noValidate>
        <div className="field">
          <label htmlFor={`${id}-order`}>Custom order</label>
          <input
            id={`${id}-order`}
            type="text"
            value={name}
            placeholder="e.g. calibrate"
            autoCapitalize="off"
            autoCorrect="off"
            spellCheck={false}
            onChange={(e) => setName(e.target.value)}
            data-testid="order-name"
          />
        </div>
        <div className="field">
          <label htmlFor={`${id}-params`}>Parameters</label>
          <textarea
            id={`${id}-params`}
            className="mono"
            rows={2}
            value={paramsText}
            placeholder={'one k=v per line, e.g.\nlevel=3'}
            aria-describedby={`${id}-params-help`}
            spellCheck={false}
            onChange={(e) => setParamsText(e.target.value)}
            data-testid="order-params"
          />
          <p id={`${id}-params-help`} className="help">
            One <code>k=v</code> per line; a value is JSON when it parses (<code>3</code>, <code>true</code>, <code>{'{"a":1}'}</code>), text
            otherwise.
          </p>
        </div>
        {customError ? (
          <p className="field-error" role="alert">
            {customError}
          </p>
        ) : null}
        <div className="actions">
          <button type="submit" className="btn" data-testid="order-custom" disabled={sending}>
            Send custom order…
          </button>
        </div>
      </form>
      {sending ? <p role="status">Sending…</p> : null}
      {result && 'ok' in result ? (
        <p className="ok-text" role="status" data-testid="order-result">
          Order <strong>{result.ok.order}</strong> sent ({result.ok.status}); id <code>{result.ok.id}</code>.
        </p>
      ) : null}
      {result && 'err' in result ? <ErrorBox error={result.err} title="Order refused" /> : null}
      {pending ? (
        <ConfirmDialog
          title={`Send “${pending.order}”?`}
          confirmLabel={`Send ${pending.order}`}
          danger={pending.order === 'reinstall'}
          onConfirm={() => void confirm()}
          onCancel={() => setPending(undefined)}
        >
          <p>
            Order <strong>{pending.order}</strong> to device <code>{deviceId}</code>
            {Object.keys(pending.params).length ? ' with parameters:' : ', no parameters.'}
          </p>
          {Object.keys(pending.params).length ? <pre className="params">{JSON.stringify(pending.params, null, 2)}</pre> : null}
          {pending.order === 'reinstall' ? (
            <p className="warn-text">
              Reinstall also resets the device&apos;s credentials: its next bootstrap call receives a new password, and its current connection is
              closed.
            </p>
          ) : null}
          {pending.order === 'reboot' ? <p>The device restarts; it may be silent for a moment.</p> : null}
        </ConfirmDialog>
      ) : null}
    </div>
  );
}
