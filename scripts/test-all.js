#!/usr/bin/env node
/**
 * Every suite, one verdict: ava (TypeScript) then pytest (Python), each against real servers its own
 * harness starts on free ports. Prints each runner's output as it comes, then the plain closing line
 * `N passed, N failed` (with `, N skipped` when any) counting all suites together; exits non-zero
 * when anything failed.
 *
 *   node scripts/test-all.js [--only ts|py] [-- extra args for the runner]
 */
'use strict';
const { spawn } = require('node:child_process');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const venv = path.resolve(process.env.CSR_VENV || path.join(root, '.venv'));
const args = process.argv.slice(2);
const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined;

/** Run a command, echo its output live, and return { code, output }. */
function runSuite(name, command, commandArgs, env) {
  return new Promise((resolve) => {
    process.stdout.write(`\n=== ${name}: ${command} ${commandArgs.join(' ')}\n`);
    const child = spawn(command, commandArgs, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const take = (stream) => (chunk) => {
      output += chunk.toString('utf8');
      stream.write(chunk);
    };
    child.stdout.on('data', take(process.stdout));
    child.stderr.on('data', take(process.stderr));
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), output }));
  });
}

const count = (text, pattern) => {
  let total = 0;
  for (const match of text.matchAll(pattern)) total += Number(match[1]);
  return total;
};

/** Counts from ava's default reporter's closing lines. */
function avaCounts({ code, output }) {
  const tail = output.split('\n').slice(-40).join('\n');
  const passed = count(tail, /(\d+) tests? passed/g);
  let failed = count(tail, /(\d+) tests? failed/g) + count(tail, /(\d+) uncaught exceptions?/g) + count(tail, /(\d+) unhandled rejections?/g);
  const skipped = count(tail, /(\d+) tests? skipped/g) + count(tail, /(\d+) tests? todo/g);
  if (code !== 0 && failed === 0) failed = 1; // a crash or timeout with no per-test verdict still fails
  return { passed, failed, skipped };
}

/** Counts from pytest's closing line, e.g. "12 passed, 1 failed, 2 skipped in 30.1s". */
function pytestCounts({ code, output }) {
  const lines = output.trim().split('\n');
  const last = [...lines].reverse().find((l) => / in [\d.]+s/.test(l)) || '';
  const pick = (word) => Number((new RegExp(`(\\d+) ${word}`).exec(last) || [0, 0])[1]);
  const passed = pick('passed');
  let failed = pick('failed') + pick('errors?');
  const skipped = pick('skipped');
  if (code !== 0 && code !== 5 && failed === 0) failed = 1; // 5 = no tests collected, not a failure by itself
  return { passed, failed, skipped };
}

/** Build (or find cached) the default toy world once, so both suites share it instead of building their own. */
async function prebuildToyworld(toyworldRoot) {
  const fs = require('node:fs');
  const os = require('node:os');
  const specFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'csr-toyworld-')), 'spec.json');
  fs.writeFileSync(specFile, JSON.stringify({ out_root: toyworldRoot, seed: 0 }));
  const started = Date.now();
  process.stdout.write(`\n=== toy world: building or reusing ${toyworldRoot} (the first build takes a few minutes)\n`);
  const result = await new Promise((resolve) => {
    const child = spawn(path.join(venv, 'bin', 'python'), ['-m', 'csr_compute', 'toyworld-build', '--spec', specFile], {
      cwd: root,
      env: { ...process.env, HF_HUB_OFFLINE: '1', PYTHONUNBUFFERED: '1', CSR_WATCH_PARENT: '0' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let lastStage = '';
    let buffer = '';
    child.stdout.on('data', (chunk) => {
      buffer += chunk.toString('utf8');
      const lines = buffer.split('\n');
      buffer = lines.pop();
      for (const line of lines) {
        try {
          const event = JSON.parse(line);
          if (event.event === 'progress' && event.step !== lastStage) {
            lastStage = event.step;
            process.stdout.write(`  stage ${event.step}: ${event.total} ${event.unit}\n`);
          } else if (event.event === 'toyworld') {
            process.stdout.write(`  world: ${event.path}\n`);
          }
        } catch {
          // not an event line
        }
      }
    });
    child.on('close', (code) => resolve(code ?? 1));
  });
  process.stdout.write(`=== toy world: exit ${result} after ${Math.round((Date.now() - started) / 1000)}s\n`);
  return result === 0;
}

(async () => {
  const totals = { passed: 0, failed: 0, skipped: 0 };
  const home = path.resolve(process.env.CSR_HOME || path.join(root, '.csr'));
  process.env.CSR_TOYWORLD_ROOT = process.env.CSR_TOYWORLD_ROOT || path.join(home, 'toyworld');
  if (!(await prebuildToyworld(process.env.CSR_TOYWORLD_ROOT))) {
    process.stdout.write('the toy world did not build: the tests that need it will fail\n');
    totals.failed += 1;
  }
  const suites = [];
  if (only !== 'py') {
    suites.push(['ava (TypeScript)', path.join(root, 'node_modules', '.bin', 'ava'), [], {}, avaCounts]);
  }
  if (only !== 'ts') {
    suites.push([
      'pytest (Python)',
      path.join(venv, 'bin', 'python'),
      ['-m', 'pytest', 'compute/tests', '-q', '-p', 'no:cacheprovider'],
      { HF_HUB_OFFLINE: '1', TRANSFORMERS_OFFLINE: '1', PYTHONUNBUFFERED: '1' },
      pytestCounts,
    ]);
  }
  for (const [name, command, commandArgs, env, parse] of suites) {
    const result = await runSuite(name, command, commandArgs, env);
    const counts = parse(result);
    process.stdout.write(`=== ${name}: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped\n`);
    for (const key of Object.keys(totals)) totals[key] += counts[key];
  }
  const skipped = totals.skipped ? `, ${totals.skipped} skipped` : '';
  process.stdout.write(`\n${totals.passed} passed, ${totals.failed} failed${skipped}\n`);
  process.exitCode = totals.failed > 0 ? 1 : 0;
})();
