// A device's config, edited in a form generated from its type's JSON Schema (schemaForm.ts) or as JSON, saved with
// `PATCH /devices/ID {config}`. The server validates; its error is shown next to the field its `path` names
// (`body.config.targetC`). While the form is untouched it follows the device's config as it is polled.
import { useEffect, useId, useMemo, useState, type FormEvent } from 'react';
import { ApiError, asApiError, updateDeviceConfig, type Device, type JsonObject, type JsonSchema } from '../api';
import { buildConfig, configKeyOf, draftOf, fieldsOf, parseConfigJson, type Draft, type Field } from '../schemaForm';
import { ErrorBox } from './common';

export interface ConfigFormProps {
  readonly deviceId: string;
  readonly config: JsonObject;
  /** The type's config schema; undefined while types load or when the type is unknown. */
  readonly schema: JsonSchema | undefined;
  readonly canEdit: boolean;
  readonly onSaved: (d: Device) => void;
}

function rangeHelp(s: JsonSchema): string | undefined {
  const lo = s.minimum !== undefined ? `≥ ${s.minimum}` : s.exclusiveMinimum !== undefined ? `> ${s.exclusiveMinimum}` : undefined;
  const hi = s.maximum !== undefined ? `≤ ${s.maximum}` : s.exclusiveMaximum !== undefined ? `< ${s.exclusiveMaximum}` : undefined;
  if (lo && hi) return `${lo} and ${hi}`;
  return lo ?? hi;
}

function optionLabel(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

interface FieldInputProps {
  readonly field: Field;
  readonly value: string | readonly string[] | undefined;
  readonly error: string | undefined;
  readonly idBase: string;
  readonly onChange: (v: string | readonly string[]) => void;
}

function FieldInput({ field: f, value, error, idBase, onChange }: FieldInputProps) {
  const id = `${idBase}-${f.key}`;
  const helpId = `${id}-help`;
  const errId = `${id}-err`;
  const help = [f.help, f.kind === 'number' || f.kind === 'integer' ? rangeHelp(f.schema) : undefined, f.kind === 'integer' ? 'whole number' : undefined]
    .filter(Boolean)
    .join(' · ');
  const describedBy = [help ? helpId : undefined, error ? errId : undefined].filter(Boolean).join(' ') || undefined;
  const text = typeof value === 'string' ? value : '';
  const placeholder = f.schema.default !== undefined ? `default: ${optionLabel(f.schema.default)}` : f.required ? '' : 'not set';
  const common = {
    id,
    'aria-describedby': describedBy,
    'aria-invalid': error ? true : undefined,
    'data-testid': `config-${f.key}`,
  } as const;

  let input;
  switch (f.kind) {
    case 'number':
    case 'integer':
      input = (
        <input
          {...common}
          type="number"
          inputMode={f.kind === 'integer' ? 'numeric' : 'decimal'}
          step={f.kind === 'integer' ? (f.schema.multipleOf ?? 1) : (f.schema.multipleOf ?? 'any')}
          min={f.schema.minimum}
          max={f.schema.maximum}
          value={text}
          placeholder={placeholder}
          onChange={(e) => onChange(e.target.value)}
        />
      );
      break;
    case 'string':
      input = (
        <input
          {...common}
          type="text"
          maxLength={f.schema.maxLength}
          value={text}
          placeholder={placeholder}
          onChange={(e) => onChange(e.target.value)}
        />
      );
      break;
    case 'boolean':
    case 'enum': {
      const options = f.kind === 'boolean' ? [true, false] : f.options;
      input = (
        <select {...common} value={text} onChange={(e) => onChange(e.target.value)}>
          {!f.required || text === '' ? <option value="">{f.schema.default !== undefined ? `(default: ${optionLabel(f.schema.default)})` : '(not set)'}</option> : null}
          {options.map((o) => (
            <option key={JSON.stringify(o)} value={JSON.stringify(o)}>
              {f.kind === 'boolean' ? (o === true ? 'yes' : 'no') : optionLabel(o)}
            </option>
          ))}
        </select>
      );
      break;
    }
    case 'multi': {
      const chosen = Array.isArray(value) ? (value as readonly string[]) : [];
      return (
        <fieldset className="field multi" aria-describedby={describedBy} data-testid={`config-${f.key}`}>
          <legend>
            {f.label}
            {f.required ? <span className="req"> (required)</span> : null}
          </legend>
          <div className="checks">
            {f.options.map((o) => {
              const k = JSON.stringify(o);
              return (
                <label key={k} className="check">
                  <input
                    type="checkbox"
                    checked={chosen.includes(k)}
                    onChange={(e) => onChange(e.target.checked ? [...chosen, k] : chosen.filter((c) => c !== k))}
                  />
                  {optionLabel(o)}
                </label>
              );
            })}
          </div>
          {help ? (
            <p id={helpId} className="help">
              {help}
            </p>
          ) : null}
          {error ? (
            <p id={errId} className="field-error" data-testid={`field-error-${f.key}`}>
              {error}
            </p>
          ) : null}
        </fieldset>
      );
    }
    case 'json':
      input = (
        <textarea {...common} rows={3} spellCheck={false} className="mono" value={text} placeholder={placeholder ? `${placeholder} (JSON)` : 'JSON'} onChange={(e) => onChange(e.target.value)} />
      );
      break;
  }
  return (
    <div className="field">
      <label htmlFor={id}>
        {f.label}
        {f.required ? <span className="req"> (required)</span> : null}
        {f.label !== f.key ? <code className="key">{f.key}</code> : null}
      </label>
      {input}
      {help ? (
        <p id={helpId} className="help">
          {help}
        </p>
      ) : null}
      {error ? (
        <p id={errId} className="field-error" data-testid={`field-error-${f.key}`}>
          {error}
        </p>
      ) : null}
    </div>
  );
}

export function ConfigForm({ deviceId, config, schema, canEdit, onSaved }: ConfigFormProps) {
  const idBase = useId().replace(/:/g, '');
  const fields = useMemo(() => fieldsOf(schema), [schema]);
  const configKey = JSON.stringify(config);
  const [mode, setMode] = useState<'form' | 'json'>(fields ? 'form' : 'json');
  const [draft, setDraft] = useState<Draft>(() => (fields ? draftOf(fields, config) : {}));
  const [jsonText, setJsonText] = useState(() => JSON.stringify(config, null, 2));
  const [dirty, setDirty] = useState(false);
  const [fieldErrors, setFieldErrors] = useState<Record<string, string>>({});
  const [formError, setFormError] = useState<ApiError | undefined>(undefined);
  const [saving, setSaving] = useState(false);
  const [saved, setSaved] = useState(false);

  // Follow the server's config (and a schema that arrives late) while nothing is being edited.
  useEffect(() => {
    if (dirty) return;
    setDraft(fields ? draftOf(fields, config) : {});
    setJsonText(JSON.stringify(config, null, 2));
    if (!fields) setMode('json');
    // `config` is read through its JSON (configKey): a new object with the same content changes nothing.
  }, [configKey, fields, dirty]);

  const reset = (): void => {
    setDirty(false);
    setFieldErrors({});
    setFormError(undefined);
    setDraft(fields ? draftOf(fields, config) : {});
    setJsonText(JSON.stringify(config, null, 2));
  };

  const edit = (): void => {
    setDirty(true);
    setSaved(false);
  };

  const switchMode = (): void => {
    if (!fields) return;
    setFieldErrors({});
    setFormError(undefined);
    if (mode === 'form') {
      setJsonText(JSON.stringify(buildConfig(fields, draft, config).config, null, 2));
      setMode('json');
    } else {
      const parsed = parseConfigJson(jsonText);
      if (!parsed.config) {
        setFormError(new ApiError(0, 'BH_DASHBOARD_JSON', parsed.error ?? 'not valid JSON'));
        return;
      }
      setDraft(draftOf(fields, parsed.config));
      setMode('form');
    }
  };

  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    if (!canEdit) return;
    setFieldErrors({});
    setFormError(undefined);
    setSaved(false);
    let next: JsonObject;
    if (mode === 'form' && fields) {
      const built = buildConfig(fields, draft, config);
      if (Object.keys(built.errors).length) {
        setFieldErrors({ ...built.errors });
        return;
      }
      next = built.config;
    } else {
      const parsed = parseConfigJson(jsonText);
      if (!parsed.config) {
        setFormError(new ApiError(0, 'BH_DASHBOARD_JSON', parsed.error ?? 'not valid JSON', 'config'));
        return;
      }
      next = parsed.config;
    }
    setSaving(true);
    try {
      const d = await updateDeviceConfig(deviceId, next);
      setDirty(false);
      setSaved(true);
      onSaved(d);
    } catch (err) {
      const ae = asApiError(err);
      const key = configKeyOf(ae.path);
      if (mode === 'form' && key !== undefined && fields?.some((f) => f.key === key)) {
        setFieldErrors({ [key]: `${ae.message} (${ae.code})` });
      } else {
        setFormError(ae);
      }
    } finally {
      setSaving(false);
    }
  };

  const extraKeys = fields ? Object.keys(config).filter((k) => !fields.some((f) => f.key === k)) : [];

  return (
    <form className="config-form" onSubmit={(e) => void submit(e)} aria-label="Device config" noValidate>
      {!canEdit ? <p className="muted">Your role can read the config but not change it.</p> : null}
      <fieldset disabled={!canEdit || saving} className="plain">
        {mode === 'form' && fields ? (
          <div className="fields">
            {fields.map((f) => (
              <FieldInput
                key={f.key}
                field={f}
                idBase={idBase}
                value={draft[f.key]}
                error={fieldErrors[f.key]}
                onChange={(v) => {
                  edit();
                  setDraft((d) => ({ ...d, [f.key]: v }));
                  setFieldErrors((fe) => {
                    const { [f.key]: _gone, ...rest } = fe;
                    return rest;
                  });
                }}
              />
            ))}
            {extraKeys.length ? (
              <p className="help">
                Also set, not in the schema (kept as they are): {extraKeys.map((k) => <code key={k}>{k} </code>)}
              </p>
            ) : null}
          </div>
        ) : (
          <div className="field">
            <label htmlFor={`${idBase}-json`}>Config (JSON object)</label>
            <textarea
              id={`${idBase}-json`}
              className="mono"
              rows={Math.min(16, Math.max(4, jsonText.split('\n').length + 1))}
              spellCheck={false}
              value={jsonText}
              data-testid="config-json"
              onChange={(e) => {
                edit();
                setJsonText(e.target.value);
              }}
            />
            {!schema ? <p className="help">No form for this device's type: its schema is not known here.</p> : null}
          </div>
        )}
        {formError ? <ErrorBox error={formError} title="Not saved" /> : null}
        {Object.keys(fieldErrors).length && mode === 'form' ? (
          <p className="field-error" role="alert">
            Not saved: fix the fields marked above.
          </p>
        ) : null}
        {canEdit ? (
          <div className="actions">
            <button type="submit" className="btn primary" data-testid="config-save" disabled={saving}>
              {saving ? 'Saving…' : 'Save config'}
            </button>
            <button type="button" className="btn" onClick={reset} disabled={!dirty}>
              Discard changes
            </button>
            {fields ? (
              <button type="button" className="btn link" onClick={switchMode}>
                {mode === 'form' ? 'Edit as JSON' : 'Edit as form'}
              </button>
            ) : null}
            {saved ? (
              <span className="ok-text" role="status">
                Saved.
              </span>
            ) : null}
          </div>
        ) : null}
      </fieldset>
    </form>
  );
}
