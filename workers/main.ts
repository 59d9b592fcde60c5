/**
 * Run workers from the command line without the CLI around them:
 * `node --import tsx workers/main.ts --kind gpu --gpus 0,1 [--stand-ins N] [--host-id ID] [--no-probe]`.
 * Settings come from the environment (CSR_HOME, TEMPORAL_ADDRESS, ...) as everywhere else.
 */
import { parseArgs } from 'node:util';
import type { WorkerKind } from './worker-options';
import { startWorkers } from './start-workers';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      kind: { type: 'string', multiple: true },
      gpus: { type: 'string' },
      'stand-ins': { type: 'string' },
      'host-id': { type: 'string' },
      'heartbeat-ms': { type: 'string' },
      'kill-grace-ms': { type: 'string' },
      'no-probe': { type: 'boolean' },
    },
  });
  const count = (name: string, text: string | undefined) => {
    if (text === undefined) return undefined;
    const value = Number(text);
    if (!Number.isInteger(value) || value < 0) throw new TypeError(`--${name}: expected a whole number, got ${text}`);
    return value;
  };
  const running = await startWorkers({
    kind: (values.kind ?? []) as WorkerKind[],
    gpus: values.gpus ? values.gpus.split(',').map((id) => id.trim()) : [],
    standIns: count('stand-ins', values['stand-ins']),
    hostId: values['host-id'],
    heartbeatEveryMs: count('heartbeat-ms', values['heartbeat-ms']),
    killGraceMs: count('kill-grace-ms', values['kill-grace-ms']),
    probe: !values['no-probe'],
  });
  console.log('workers ready');
  await running.done;
  console.log('workers stopped');
}

main().catch((error: unknown) => {
  console.error(`error: ${(error as Error).message}`);
  process.exitCode = 1;
});
