/**
 * `csr score mmvet --judge-url ...` grades an answer file written by LLaVA's eval scripts through an
 * OpenAI-compatible endpoint started here, which replies as MM-Vet's official grader does (a correctness
 * in [0, 1]); the key reaches it only through a variable listed in CSR_JUDGE_KEY_ENVS.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { repoRoot, tempDir } from './helpers/temporal-harness';

const MMVET = path.join(repoRoot, 'compute', 'tests', 'fixtures', 'eval', 'mmvet');

interface Seen {
  model: string;
  auth?: string;
  row: string;
}

/** The grader: "x = -1" is half right (0.5), "a dog" right (1.0), as gpt-4 grades the official few-shot rows. */
function startGrader(seen: Seen[]): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
    req.on('end', () => {
      const request = JSON.parse(body) as { model: string; messages: { content: string }[] };
      const row = request.messages.at(-1)?.content.split('\n').pop() ?? '';
      seen.push({ model: request.model, auth: req.headers.authorization, row });
      const content = row.includes('| x = -1 |') ? '0.5' : row.includes('| a dog |') ? '1.0' : 'unsure';
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ choices: [{ message: { role: 'assistant', content } }] }));
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

function csr(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  // Asynchronous: the grader answers from this process's event loop while the scorer runs.
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(repoRoot, 'bin', 'csr.js'), ...args], {
      env: { ...process.env, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('csr score mmvet --judge-url grades LLaVA answers through the endpoint', async (t) => {
  const seen: Seen[] = [];
  const server = await startGrader(seen);
  t.teardown(() => server.close());
  const dir = tempDir('csr-score-judge-');
  // LLaVA's model_vqa.py lines: MM-Vet questions numbered 0..217 (v1_0 ... once converted).
  const answers = path.join(dir, 'llava-mmvet.jsonl');
  fs.writeFileSync(
    answers,
    [
      { question_id: 0, prompt: 'What is x in the equation?', text: 'x = -1', answer_id: 'a1', model_id: 'llava', metadata: {} },
      { question_id: 1, prompt: 'What animal is this?', text: 'a dog', answer_id: 'a2', model_id: 'llava', metadata: {} },
    ]
      .map((line) => JSON.stringify(line))
      .join('\n') + '\n',
  );
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  const args = ['score', 'mmvet', '--data', MMVET, '--answers', answers, '--judge-url', url, '--judge-model', 'gpt-4-0613'];
  const env = { CSR_JUDGE_KEY_ENVS: 'TEST_JUDGE_KEY', TEST_JUDGE_KEY: 'k-test' };

  const graded = await csr([...args, '--judge-api-key-env', 'TEST_JUDGE_KEY', '--judge-cache', path.join(dir, 'cache.jsonl'), '--json'], env);
  t.is(graded.code, 0, graded.stderr);
  const metrics = JSON.parse(graded.stdout) as Record<string, number>;
  // (0.5 + 1.0) / 2 x 100; ocr and math only in v1_0, rec only in v1_1
  t.is(metrics.total, 75);
  t.is(metrics['capability/ocr'], 50);
  t.is(metrics['capability/rec'], 100);
  t.is(metrics['combination/math_ocr'], 50);
  t.deepEqual(
    seen.map((s) => [s.model, s.auth, s.row]),
    [
      ['gpt-4-0613', 'Bearer k-test', 'What is x in the equation? | -1 <AND> -5 | x = -1 | '],
      ['gpt-4-0613', 'Bearer k-test', 'What animal is this? | dog <OR> puppy | a dog | '],
    ],
  );

  // The same run again with the cache: nothing is asked.
  const again = await csr([...args, '--judge-api-key-env', 'TEST_JUDGE_KEY', '--judge-cache', path.join(dir, 'cache.jsonl'), '--json'], env);
  t.is(again.code, 0, again.stderr);
  t.deepEqual(JSON.parse(again.stdout), metrics);
  t.is(seen.length, 2);

  // A key variable outside the operator's allowlist never reaches the endpoint: exit 2, one line naming the flag.
  const refused = await csr([...args, '--judge-api-key-env', 'HOME'], env);
  t.is(refused.code, 2);
  t.is(refused.stderr, 'csr score: --judge-api-key-env: expected one of TEST_JUDGE_KEY, got "HOME"\n');
  t.is(seen.length, 2);
});
