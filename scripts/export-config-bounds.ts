// Write compute/csr_compute/config_bounds.json from the zod schema: `npx tsx scripts/export-config-bounds.ts`.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { configBoundsJson } from '../src/config/bounds';

const target = path.resolve(__dirname, '..', 'compute', 'csr_compute', 'config_bounds.json');
fs.writeFileSync(target, configBoundsJson());
console.log(`wrote ${path.relative(process.cwd(), target)}`);
