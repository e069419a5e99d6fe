// Built-in inputs. A new input: a folder here with index.ts (definition + options schema) and README.md, and a line below.
import type { InputDefinition } from '../core/driver.js';
import { brokerInput } from './broker/index.js';
import { httpInput } from './http/index.js';
import { linesInput } from './lines/index.js';
import { mqttInput } from './mqtt/index.js';
import { simulatorInput } from './simulator/index.js';

export const builtinInputs: readonly InputDefinition[] = [brokerInput, mqttInput, linesInput, httpInput, simulatorInput] as readonly InputDefinition[];
