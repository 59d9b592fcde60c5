#!/usr/bin/env node
/**
 * Every suite, one verdict: ava (TypeScript), the end-to-end workflow tests, then pytest (Python), each
 * against real servers its own harness starts on free ports. Prints each runner's output as it comes,
 * then the plain closing line `N passed, N failed` (with `, N skipped` when any) counting all suites
 * together; exits non-zero when anything failed.
 *
 *   node scripts/test-all.js [--only ts|py]
 */
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
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

/**
 * Counts from ava's default reporter: one "✔" line per passed test and one "✘" line per failed one
 * (its closing summary names only the failures when there are any, so it cannot give the passes).
 */
function avaCounts({ code, output }) {
  const lines = (pattern) => (output.match(pattern) || []).length;
  const passed = lines(/^\s*✔ (?!\[expected fail\])/gm);
  const summary = (what) => new RegExp(`^\\s*(\\d+) ${what}\\s*$`, 'gm');
  let failed = Math.max(lines(/^\s*✘ /gm), count(output, summary('tests? failed'))) +
    count(output, summary('uncaught exceptions?')) + count(output, summary('unhandled rejections?'));
  const skipped = count(output, summary('tests? skipped')) + count(output, summary('tests? todo'));
  if (code !== 0 && failed === 0) failed = 1; // a crash or timeout with no per-test verdict still fails
  return { passed, failed, skipped };
}

/**
 * Counts from the JUnit XML report pytest writes: its closing line depends on the verbosity that
 * compute/pyproject.toml's addopts add to ours (at -qq it is not printed at all), the report does not.
 */
function pytestCounts(reportFile) {
  return ({ code }) => {
    let text = '';
    try {
      text = fs.readFileSync(reportFile, 'utf8');
    } catch {
      // no report: pytest did not get as far as running tests
    }
    const suite = /<testsuite\b[^>]*>/.exec(text)?.[0] || '';
    const attribute = (name) => Number((new RegExp(`\\b${name}="(\\d+)"`).exec(suite) || [0, 0])[1]);
    const skipped = attribute('skipped');
    let failed = attribute('failures') + attribute('errors');
    const passed = attribute('tests') - failed - skipped;
    if (code !== 0 && code !== 5 && failed === 0) failed = 1; // 5 = no tests collected, not a failure by itself
    return { passed, failed, skipped };
  };
}

/** Build (or find cached) the default toy world once, so both suites share it instead of building their own. */
async function prebuildToyworld(toyworldRoot) {
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
  const pytestReport = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'csr-pytest-')), 'report.xml');
  if (only !== 'py') {
    const ava = path.join(root, 'node_modules', '.bin', 'ava');
    suites.push(['ava (TypeScript)', ava, [], {}, avaCounts]);
    // The workflow and sweep tests run real compute on the toy world: alone and one file at a time, so
    // that nothing else competes for the cores.
    const slow = ['test/slow/workflows.test.ts', 'test/slow/sweep.test.ts'];
    suites.push(['ava (workflows end to end)', ava, ['--timeout=15m', '--concurrency=1', ...slow], {}, avaCounts]);
  }
  if (only !== 'ts') {
    suites.push([
      'pytest (Python)',
      path.join(venv, 'bin', 'python'),
      ['-m', 'pytest', 'compute/tests', '-p', 'no:cacheprovider', `--junitxml=${pytestReport}`],
      { HF_HUB_OFFLINE: '1', TRANSFORMERS_OFFLINE: '1', PYTHONUNBUFFERED: '1' },
      pytestCounts(pytestReport),
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
