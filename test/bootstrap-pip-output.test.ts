import test from 'ava';

// Plain JavaScript: the bootstrap runs before `npm ci`.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { foldPipOutput } = require('../scripts/pip-output.js') as {
  foldPipOutput: (stdout: string, stderr: string, status: number | null, verbose: boolean) => string[];
};

const stdout = [
  'Looking in indexes: https://pypi.org/simple',
  'Requirement already satisfied: numpy==2.1.0 in ./.venv/lib/python3.11/site-packages',
  'Collecting torch==2.13.0',
  '  Downloading torch-2.13.0-cp311-none-linux_x86_64.whl (190.2 MB)',
  'Installing collected packages: torch, trl',
  'Successfully installed torch-2.13.0 trl-0.24.0',
].join('\n');

test('a pip install that works is one line', (t) => {
  t.deepEqual(foldPipOutput(stdout, '', 0, false), ['pip installed 2 packages (CSR_VERBOSE=1 npm run bootstrap -- --force lists them)']);
});

test('a failing pip install, or CSR_VERBOSE=1, shows every useful line', (t) => {
  const failed = foldPipOutput(stdout, 'ERROR: No matching distribution found for torch==9', 1, false);
  t.true(failed.includes('ERROR: No matching distribution found for torch==9'));
  t.true(failed.includes('Collecting torch==2.13.0'));
  t.false(failed.some((l) => l.startsWith('Requirement already satisfied')));
  t.is(foldPipOutput(stdout, '', 0, true).length, 4);
});
