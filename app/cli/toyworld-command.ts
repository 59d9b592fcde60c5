/** `csr toyworld build`: build (or find cached) the synthetic world, with progress per stage. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { csrEnv } from '../../src/env';
import { runPython } from './python-step';

export async function toyworldBuildCommand(options: { seed: number; json?: boolean }): Promise<number> {
  const env = csrEnv();
  const specFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'csr-toyworld-')), 'spec.json');
  fs.writeFileSync(specFile, JSON.stringify({ out_root: env.toyworldRoot, seed: options.seed }));
  let lastStage = '';
  let worldPath: string | undefined;
  const code = await runPython(['-m', 'csr_compute', 'toyworld-build', '--spec', specFile], (line) => {
    let event: Record<string, unknown>;
    try {
      event = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    if (options.json) console.log(line);
    if (event.event === 'progress') {
      const stage = String(event.step ?? '');
      const text = `  ${stage.padEnd(16)} ${event.done}/${event.total} ${event.unit ?? ''}${event.eta_s != null ? `  ETA ${event.eta_s}s` : ''}`;
      if (process.stdout.isTTY && !options.json) process.stdout.write(`\r${text.padEnd(70)}`);
      else if (stage !== lastStage && !options.json) console.log(text);
      if (stage !== lastStage && process.stdout.isTTY && lastStage) process.stdout.write('\n');
      lastStage = stage;
    } else if (event.event === 'toyworld') {
      worldPath = String(event.path);
    } else if (event.event === 'error') {
      console.error(`\ntoy world build failed: ${event.message}`);
    }
  });
  if (process.stdout.isTTY) process.stdout.write('\n');
  if (code === 0 && !options.json) console.log(`toy world ready: ${worldPath ?? '(path not reported)'}`);
  return code;
}
