// Built-in stages. A new stage: a folder under stages/ with index.ts (definition + schema) and README.md, and a line here.
import type { StageDefinition } from '../core/driver.js';
import { filterStage } from './stages/filter/index.js';
import { mapStage } from './stages/map/index.js';
import { rangeStage } from './stages/range/index.js';
import { scaleStage } from './stages/scale/index.js';

export const builtinStages: readonly StageDefinition[] = [filterStage, mapStage, scaleStage, rangeStage] as readonly StageDefinition[];
