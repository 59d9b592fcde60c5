/**
 * Every bad input the CLI can be given: exit 2 (3 when the file is missing), a message naming the file
 * or field and what was expected, no stack trace or Python traceback, and no raw bytes of the input on
 * the terminal. `csr run` refuses before it connects anywhere; `csr score` runs the real Python scorer.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { repoRoot, tempDir } from './helpers/temporal-harness';

const dir = tempDir('csr-bad-inputs-');
const GOOD = 'name: x\niterations: 1\nmodel: { source: toyworld }\nclip: { source: toyworld }\n';
const POPE = path.join(repoRoot, 'compute', 'tests', 'fixtures', 'eval', 'pope');
// Control bytes (C0 but tab/newline, DEL, C1 such as CSI) and the replacement of undecodable bytes.
const RAW_BYTES = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\ufffd]/;

function file(name: string, content: string | Buffer): string {
  const target = path.join(dir, name);
  fs.writeFileSync(target, content);
  return target;
}

function csr(args: string[], env: NodeJS.ProcessEnv = {}) {
  // A Temporal address nobody listens on: a refused input must fail before any connection.
  const done = spawnSync(process.execPath, [path.join(repoRoot, 'bin', 'csr.js'), ...args], {
    encoding: 'latin1',
    env: { ...process.env, TEMPORAL_ADDRESS: '127.0.0.1:1', CSR_JUDGE_KEY_ENVS: '', ...env },
    timeout: 120_000,
  });
  return { status: done.status, stderr: done.stderr, stdout: done.stdout };
}

/** [case, argv, expected exit code, pattern of the message, env]. */
const CASES: [string, () => string[], number, RegExp, NodeJS.ProcessEnv?][] = [
  ['missing config', () => ['run', '--config', path.join(dir, 'nowhere.yaml')], 3, /nowhere\.yaml: 1 problem\n {2}no such file/],
  ['binary config', () => ['run', '--config', file('binary.yaml', Buffer.from([0x1b, 0x5b, 0x33, 0x31, 0x6d, 0x00, 0xff, 0xfe]))], 2, /binary\.yaml: 1 problem\n {2}expected a YAML text file, got binary data \(a NUL byte at offset 5\)/],
  ['Latin-1 config', () => ['run', '--config', file('latin1.yaml', Buffer.from(`${GOOD}# caf\xe9\n`, 'latin1'))], 2, /latin1\.yaml: 1 problem\n {2}expected UTF-8 text, got byte 0xe9 at line 5 \(offset \d+\); save the file as UTF-8/],
  ['.inf', () => ['run', '--config', file('inf.yaml', `${GOOD}reward: { alpha: .inf }\n`)], 2, /reward\.alpha: expected number 0\.\.1, got infinity/],
  ['seed 2^32', () => ['run', '--config', file('seed.yaml', `${GOOD}seed: 4294967296\n`)], 2, /seed: expected integer 0\.\.4294967195, got 4294967296/],
  ['control characters in a value', () => ['run', '--config', file('c1.yaml', `${GOOD.replace('name: x', 'name: "x\\e[31m\\x9b"')}`)], 2, /name: expected a name of letters, digits, - and _, got "x\\u001b\[31m\\u009b"/],
  ['benchmark name with a path', () => ['run', '--config', file('bench.yaml', `${GOOD}evaluate: { benchmarks: [{ name: ../../x }] }\n`)], 2, /evaluate\.benchmarks\.0\.name: expected benchmark name of letters, digits, - and _, got "\.\.\/\.\.\/x"/],
  ['judge key outside the allowlist', () => ['run', '--config', file('judge.yaml', `${GOOD}evaluate: { judge: { url: "https://judge.example", model: m, api_key_env: AWS_SECRET_ACCESS_KEY } }\n`)], 2, /evaluate\.judge\.api_key_env: expected one of OPENAI_API_KEY, got "AWS_SECRET_ACCESS_KEY"/, { CSR_JUDGE_KEY_ENVS: 'OPENAI_API_KEY' }],
  ['judge URL not http(s)', () => ['run', '--config', file('judge-url.yaml', `${GOOD}evaluate: { judge: { url: "file:///etc/passwd", model: m } }\n`)], 2, /evaluate\.judge\.url: expected an http\(s\) URL, got "file:\/\/\/etc\/passwd"/],
  ['dpo.beta 0 in a sweep cell', () => ['sweep', '--config', file('sweep.yaml', GOOD), '--grid', 'dpo.beta=0.1,0', '--seeds', '1'], 2, /dpo\.beta: expected number > 0, got 0/],
  ['score: empty answers', () => ['score', 'pope', '--data', POPE, '--answers', file('empty.jsonl', '')], 2, /empty\.jsonl: no answers; expected one \{"question_id": \.\.\., "text": \.\.\.\} per line/],
  ['score: Latin-1 answers', () => ['score', 'pope', '--data', POPE, '--answers', file('latin1.jsonl', Buffer.from('{"question_id": 1, "text": "caf\xe9"}\n', 'latin1'))], 2, /latin1\.jsonl: expected UTF-8 text \(answers .*\), got byte 0xe9 at offset 31/],
  ['score: binary answers', () => ['score', 'pope', '--data', POPE, '--answers', file('binary.jsonl', Buffer.from([0x1b, 0x5b, 0x32, 0x4a, 0x00, 0x9b, 0x0a]))], 2, /binary\.jsonl: expected UTF-8 text .*got byte 0x9b at offset 5/],
  ['score: control bytes in valid UTF-8', () => ['score', 'pope', '--data', POPE, '--answers', file('escape.jsonl', '\u001b[2J\u009b not json\n')], 2, /escape\.jsonl line 1: not valid JSON .*the line starts "\\u001b\[2J\\u009b not json"/],
  ['score: missing answers', () => ['score', 'pope', '--data', POPE, '--answers', path.join(dir, 'nowhere.jsonl')], 3, /nowhere\.jsonl' not found/],
];

for (const [name, argv, code, pattern, env] of CASES) {
  test(`${name}: exit ${code}, one clear message`, (t) => {
    const { status, stderr } = csr(argv(), env);
    t.is(status, code, stderr);
    t.regex(stderr, pattern);
    t.notRegex(stderr, /Traceback|\n\s+at /, 'no stack trace');
    t.notRegex(stderr, RAW_BYTES, 'no raw bytes of the input');
  });
}

test('schedule create: an id that would leave the artifact root is refused before connecting', (t) => {
  const { status, stderr } = csr(['schedule', 'create', '../../x', '--config', file('sched.yaml', GOOD), '--cron', '0 2 * * *']);
  t.is(status, 2, stderr);
  t.regex(stderr, /^schedule id: expected letters, digits, \., - and _, got "\.\.\/\.\.\/x"/);
});

test('a Temporal TLS setting that cannot work: exit 2, the variable named, before connecting', (t) => {
  const { status, stderr } = csr(['list'], { TEMPORAL_TLS_CERT: path.join(dir, 'client.pem') });
  t.is(status, 2, stderr);
  t.regex(stderr, /^error: TEMPORAL_TLS_CERT: cannot read \S*client\.pem \(ENOENT\)/);
});
