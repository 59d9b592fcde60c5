/** `csr up`, `csr down`, `csr health`: the embedded stack. */
import { csrEnv } from '../../src/env';
import { stackDown, stackHealth, stackUp, type ServiceHealth } from '../stack/stack';
import { WorkersNotPollingError } from '../stack/worker-pollers';
import { table, uiLinks } from './output';

function printHealth(services: ServiceHealth[]): void {
  console.log(
    table([
      ['service', 'state', 'where', 'pid'],
      ...services.map((s) => [
        s.name,
        !s.healthy ? 'DOWN' : s.polling === false ? 'up, not polling' : 'up',
        `${s.url}${s.embedded ? '' : ' (external)'}`,
        s.pid === undefined ? '-' : String(s.pid),
      ]),
    ]),
  );
}

export async function upCommand(options: {
  gpuWorkers?: number;
  gpus?: string;
  workers?: boolean;
  workerTimeout?: number;
}): Promise<number> {
  let services: ServiceHealth[];
  try {
    services = await stackUp({
      gpuWorkers: options.gpuWorkers,
      gpus: options.gpus ? options.gpus.split(',').map((s) => s.trim()) : undefined,
      noWorkers: options.workers === false,
      workerTimeoutMs: options.workerTimeout === undefined ? undefined : options.workerTimeout * 1000,
      log: (line) => console.log(line),
    });
  } catch (error) {
    if (!(error instanceof WorkersNotPollingError)) throw error;
    console.error(`error: ${error.message}`);
    return 2;
  }
  printHealth(services);
  for (const line of uiLinks()) console.log(line);
  console.log(`state folder: ${csrEnv().home} (stop everything with: npx csr down)`);
  return services.every((s) => s.healthy) ? 0 : 1;
}

export async function downCommand(): Promise<number> {
  await stackDown(csrEnv(), (line) => console.log(line));
  return 0;
}

export async function healthCommand(options: { json?: boolean }): Promise<number> {
  const services = await stackHealth();
  if (options.json) console.log(JSON.stringify(services, null, 2));
  else printHealth(services);
  return services.every((s) => s.healthy) ? 0 : 1;
}
