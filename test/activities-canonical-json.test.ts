import { execFileSync } from 'node:child_process';
import test from 'ava';
import { pythonJsonDumps, specHash } from '../activities/canonical-json';
import { venvPython } from './helpers/temporal-harness';

/** What Python prints for json.dumps(json.loads(text), sort_keys=True, default=str), and its sha256. */
function python(text: string): { dumped: string; hash: string } {
  const script =
    'import hashlib, json, sys\n' +
    'spec = json.loads(sys.stdin.read())\n' +
    'out = json.dumps(spec, sort_keys=True, default=str)\n' +
    'sys.stdout.write(json.dumps({"dumped": out, "hash": hashlib.sha256(out.encode()).hexdigest()}))\n';
  return JSON.parse(execFileSync(venvPython, ['-c', script], { input: text, encoding: 'utf8' }));
}

const nested = {
  out_dir: '/tmp/ünïcödé/out',
  model: { path: '/models/llava-1.5-7b', dtype: 'bfloat16', lora: { r: 128, alpha: 256, dropout: 0.05 } },
  floats: [0.1, 1.5, -2.25, 1e-7, 0.0001, 0.00001, 123456789.125, 1e21, 1.5e300, 5e-324, 3.0, -0, 2 ** 53 + 2],
  big_int: 12345678901234567890,
  flags: [true, false, null],
  text: 'tab\there "quote" \\ back\nline\u0001 \u007f é 中文 😀 \u2028',
  'z-last': 1,
  'a-first': { Zeta: 1, alpha: 2, '\uff01': 'fullwidth', '😀key': 'astral', '': 'empty' },
  empty: { obj: {}, arr: [] },
  dropped: undefined,
  not_a_number: Number.NaN,
};

test('pythonJsonDumps is byte-identical to Python json.dumps(sort_keys=True) on a nested spec', (t) => {
  const fromPython = python(JSON.stringify(nested));
  t.is(pythonJsonDumps(nested), fromPython.dumped);
  t.is(specHash(nested), fromPython.hash);
});

test('floats in both notations and the int/float boundary match Python', (t) => {
  const values = [0.5, 1e-5, 9.999e-5, 1e-4, 1e15, 1e16, 1.234e16, 9007199254740993, 1e22, -1e-10, 0.1 + 0.2, 100.0];
  for (const value of values) {
    t.is(pythonJsonDumps([value]), python(JSON.stringify([value])).dumped, `value ${value}`);
  }
});

test('the hash changes when a value changes', (t) => {
  t.not(specHash({ out_dir: '/x', alpha: 0.9 }), specHash({ out_dir: '/x', alpha: 0.91 }));
});
