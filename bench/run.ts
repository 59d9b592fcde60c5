/**
 * `npm run bench`: runs the compute benchmarks (compute/benchmarks/bench.py) in the project's venv, prints
 * their table and writes bench/results.json. Arguments go through: `npm run bench -- generate_mid --quick`.
 *
 * Not part of `npm test`: every figure is a ratio against a baseline measured in the same run, never asserted.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(__dirname, '..');
const venv = resolve(root, process.env.CSR_VENV ?? '.venv');
const python = join(venv, process.platform === 'win32' ? 'Scripts/python.exe' : 'bin/python');
if (!existsSync(python)) {
  console.error(`no Python venv at ${venv}: run npm run bootstrap first`);
  process.exit(3);
}
const result = spawnSync(python, [join(root, 'compute', 'benchmarks', 'bench.py'), ...process.argv.slice(2)], {
  cwd: root,
  stdio: 'inherit',
  // One torch thread unless told otherwise: the benchmarks compare two runs on a possibly shared CPU.
  env: { ...process.env, CSR_TORCH_THREADS: process.env.CSR_TORCH_THREADS ?? '1', HF_HUB_OFFLINE: '1' },
});
process.exit(result.status ?? 1);
