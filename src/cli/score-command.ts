/** `csr score BENCHMARK --data PATH --answers FILE [--json]`: the official metric of one answer file. */
import { runPython } from './python-step';

export function scoreCommand(benchmark: string, options: { data?: string; answers: string; json?: boolean }): Promise<number> {
  const args = ['-m', 'csr_compute.evaluation.score', benchmark, '--answers', options.answers];
  if (options.data) args.push('--data', options.data);
  if (options.json) args.push('--json');
  return runPython(args);
}
