/** `csr worker`: run workers in the foreground until SIGINT/SIGTERM (which stop their compute processes). */
import { createLightActivities } from '../../activities/light-activities';
import { csrEnv } from '../../src/env';
import { startWorkers, type WorkerKind } from '../../workers';

export async function workerCommand(options: { cpu?: boolean; gpus?: string; standIns?: number; host?: boolean }): Promise<number> {
  const kinds: WorkerKind[] = [];
  if (options.cpu) kinds.push('cpu');
  if (options.gpus || options.standIns) kinds.push('gpu');
  if (options.host) kinds.push('host');
  if (kinds.length === 0) {
    console.error('say which workers to run: --cpu, --gpus 0,1, --stand-ins N and/or --host');
    return 2;
  }
  const env = csrEnv();
  const running = await startWorkers({
    kind: kinds,
    gpus: options.gpus ? options.gpus.split(',').map((id) => id.trim()).filter(Boolean) : [],
    standIns: options.standIns,
    env,
    // Built around the CPU worker's fork server, which draws the headline plot.
    lightActivities: options.cpu ? (deps) => createLightActivities(env, deps) : {},
  });
  console.log(`workers ready (${running.workers.map((w) => w.name).join(', ')}); stop with Ctrl-C`);
  await running.done;
  console.log('workers stopped');
  return 0;
}
