// Gateways: device logins allowed to carry readings for other devices (an OpenTRV hub relaying its valves' radio
// frames, a LoRa gateway forwarding for its nodes). Every other device login may only carry its own readings; the
// device gate refuses the rest (BH_DEVICE_FOREIGN). Declared in the config under `devices.gateways`.
import { BackhaulError } from '../core/errors.js';
import { globMatcher } from '../core/glob.js';

/** One gateway as the config declares it. */
export interface GatewayConfig {
  /** The gateway's MQTT login on the embedded broker (its registry username; by default its device id). */
  readonly login: string;
  /** Canonical device ids or globs (`*`, `?`) it may carry readings for. */
  readonly devices: readonly string[];
  readonly description?: string;
}

/** What `backhaul check` reports about `devices.gateways`: errors stop a start, warnings do not. */
export function gatewayProblems(gateways: readonly GatewayConfig[], path: string): { errors: BackhaulError[]; warnings: string[] } {
  const errors: BackhaulError[] = [];
  const warnings: string[] = [];
  const seen = new Set<string>();
  gateways.forEach((g, i) => {
    const at = `${path}[${i}]`;
    if (seen.has(g.login)) errors.push(new BackhaulError('BH_CONFIG_SCHEMA', `the login ${JSON.stringify(g.login)} is declared a gateway twice; merge its device lists`, { path: `${at}.login` }));
    seen.add(g.login);
    g.devices.forEach((glob, j) => {
      // Device ids are 1-128 printable ASCII characters without spaces (src/devices/types.ts): a glob with anything
      // else could never match one, so it is a mistake.
      if (!/^[\x21-\x7e]{1,128}$/.test(glob)) {
        errors.push(new BackhaulError('BH_CONFIG_SCHEMA', `${JSON.stringify(glob)} is not a device id or glob (printable ASCII, no spaces, at most 128 characters)`, { path: `${at}.devices[${j}]` }));
      } else if (/^[*?]*$/.test(glob)) {
        warnings.push(`${at}.devices[${j}]: ${JSON.stringify(glob)} lets the login ${JSON.stringify(g.login)} carry readings for every device`);
      }
    });
  });
  return { errors, warnings };
}

/** Compiles the gateways once: `(login, id)` → may that login carry readings for that (canonical) device id. */
export function gatewayMatcher(gateways: readonly GatewayConfig[]): (login: string, id: string) => boolean {
  const byLogin = new Map<string, (id: string) => boolean>();
  for (const g of gateways) {
    const m = globMatcher(g.devices);
    if (m) byLogin.set(g.login, m);
  }
  return (login, id) => byLogin.get(login)?.(id) ?? false;
}
