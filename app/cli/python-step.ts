/** Running a compute command of the venv in the foreground, for CLI commands that need no workflow. */
import { spawn } from 'node:child_process';
import { csrEnv, repoRoot } from '../../src/env';

/** Run `python -m MODULE ARGS...` with inherited stdio; resolves to its exit code. */
export function runPython(moduleArgs: string[], onStdoutLine?: (line: string) => void): Promise<number> {
  const env = csrEnv();
  return new Promise((resolve, reject) => {
    const child = spawn(env.python, moduleArgs, {
      cwd: repoRoot,
      env: { ...process.env, CSR_HOME: env.home, HF_HUB_OFFLINE: '1', PYTHONUNBUFFERED: '1' },
      stdio: ['ignore', onStdoutLine ? 'pipe' : 'inherit', 'inherit'],
    });
    if (onStdoutLine && child.stdout) {
      let buffer = '';
      child.stdout.on('data', (chunk: Buffer) => {
        buffer += chunk.toString('utf8');
        const lines = buffer.split('\n');
        buffer = lines.pop() ?? '';
        for (const line of lines) if (line.trim()) onStdoutLine(line);
      });
    }
    child.once('error', reject);
    child.once('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}
