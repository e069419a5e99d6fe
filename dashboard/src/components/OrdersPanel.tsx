// Orders to one device: Reboot, Reinstall, or a custom order (name + k=v parameters), each confirmed in a dialog,
// then `POST /devices/ID/commands {order, params}`. A LoRaWAN device's order is a downlink: its codec encodes the
// parameters, or the operator gives the bytes (hex) and fPort; Reboot and Reinstall are not offered for it.
import { useId, useState, type FormEvent } from 'react';
import { asApiError, sendCommand, type ApiError, type Command, type JsonObject, type RawDownlink } from '../api';
import { parseParams } from '../schemaForm';
import { ErrorBox } from './common';
import { ConfirmDialog } from './ConfirmDialog';

const ORDER = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;

interface Pending {
  readonly order: string;
  readonly params: JsonObject;
  readonly downlink?: RawDownlink;
}

const HEX = /^(?:[0-9a-fA-F]{2}){1,242}$/;

export function OrdersPanel({ deviceId, onSent, lorawan = false }: { deviceId: string; onSent: (c: Command) => void; lorawan?: boolean }) {
  const id = useId().replace(/:/g, '');
  const [pending, setPending] = useState<Pending | undefined>(undefined);
  const [name, setName] = useState('');
  const [paramsText, setParamsText] = useState('');
  const [hex, setHex] = useState('');
  const [fPort, setFPort] = useState('');
  const [customError, setCustomError] = useState<string | undefined>(undefined);
  const [sending, setSending] = useState(false);
  const [result, setResult] = useState<{ ok: Command } | { err: ApiError } | undefined>(undefined);

  const ask = (order: string, params: JsonObject = {}, downlink?: RawDownlink): void => {
    setResult(undefined);
    setPending({ order, params, ...(downlink ? { downlink } : {}) });
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
    let downlink: RawDownlink | undefined;
    const bytes = hex.replace(/[\s:]/g, '');
    if (lorawan && (bytes !== '' || fPort.trim() !== '')) {
      const port = Number(fPort);
      if (!HEX.test(bytes)) {
        setCustomError('Give the downlink as bytes in hex, two digits each (1 to 242 bytes), e.g. 010f.');
        return;
      }
      if (!Number.isInteger(port) || port < 1 || port > 223) {
        setCustomError('Give the downlink an fPort from 1 to 223.');
        return;
      }
      downlink = { hex: bytes, fPort: port };
    }
    setCustomError(undefined);
    ask(order, p.params, downlink);
  };

  const confirm = async (): Promise<void> => {
    const p = pending;
    if (!p) return;
    setPending(undefined);
    setSending(true);
    try {
      const c = await sendCommand(deviceId, p.order, p.params, p.downlink);
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
      {lorawan ? (
        <p className="help">Orders go out as LoRaWAN downlinks: the device hears one after its next uplink, and answers in the one after.</p>
      ) : (
        <div className="actions">
          <button type="button" className="btn" data-testid="order-reboot" disabled={sending} onClick={() => ask('reboot')}>
            Reboot
          </button>
          <button type="button" className="btn warn" data-testid="order-reinstall" disabled={sending} onClick={() => ask('reinstall')}>
            Reinstall
          </button>
        </div>
      )}
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
        {lorawan ? (
          <div className="field-row">
            <div className="field">
              <label htmlFor={`${id}-hex`}>Downlink bytes (hex)</label>
              <input
                id={`${id}-hex`}
                type="text"
                className="mono"
                value={hex}
                placeholder="empty: the codec encodes the parameters"
                autoCapitalize="off"
                autoCorrect="off"
                spellCheck={false}
                onChange={(e) => setHex(e.target.value)}
                data-testid="order-hex"
              />
            </div>
            <div className="field">
              <label htmlFor={`${id}-fport`}>fPort</label>
              <input id={`${id}-fport`} type="number" min={1} max={223} value={fPort} onChange={(e) => setFPort(e.target.value)} data-testid="order-fport" />
            </div>
          </div>
        ) : null}
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
          {pending.downlink ? (
            <p>
              As the downlink <code>{pending.downlink.hex}</code> on port {pending.downlink.fPort}.
            </p>
          ) : null}
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
