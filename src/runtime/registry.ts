// Every built-in driver, by kind. Later: drivers from npm packages named in the config join here.
import { byType, type DriverRegistry } from '../core/driver.js';
import { builtinDecoders } from '../decoders/registry.js';
import { builtinInputs } from '../inputs/registry.js';
import { builtinStages } from '../pipeline/registry.js';
import { builtinSinks } from '../sinks/registry.js';

export function builtinRegistry(): DriverRegistry {
  return {
    inputs: byType(builtinInputs),
    decoders: byType(builtinDecoders),
    stages: byType(builtinStages),
    sinks: byType(builtinSinks),
  };
}
