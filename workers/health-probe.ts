/**
 * The start-up health check of a compute worker: run the `probe` step once in exactly the
 * environment the worker's steps will get, and report what torch sees there.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type ComputeEvent, failureForExit, runComputeProcess } from '../activities';
import type { CsrEnv } from '../src/env';

/** What a worker's probe found. */
export interface ProbeReport {
  worker: string;
  /** GPU ids the worker leases. */
  gpus: string[];
  python: string;
  torch: string;
  cudaAvailable: boolean;
  cudaVisibleDevices: string | null;
  devices: string[];
  threads: number;
}

/** Run the probe step with `childEnv`; throws with the step's own message when the environment is broken. */
export async function probeHealth(options: {
  env: Pick<CsrEnv, 'home' | 'python'>;
  /** This host's id: CSR_HOME may be shared by several hosts, whose workers have the same names. */
  host: string;
  worker: string;
  gpus: string[];
  childEnv: NodeJS.ProcessEnv;
  signal?: AbortSignal;
}): Promise<ProbeReport> {
  const outDir = path.join(options.env.home, 'workers', options.host, options.worker);
  fs.mkdirSync(outDir, { recursive: true });
  const specFile = path.join(outDir, 'probe-spec.json');
  fs.writeFileSync(specFile, `${JSON.stringify({ out_dir: outDir, sleep_s: 0 })}\n`);
  let report: ComputeEvent | undefined;
  const run = await runComputeProcess({
    python: options.env.python,
    step: 'probe',
    specFile,
    logFile: path.join(outDir, 'probe.log'),
    env: options.childEnv,
    signal: options.signal,
    onEvent: (event) => {
      if (event.event === 'probe') report = event;
    },
  });
  const failure = failureForExit(run);
  if (failure) throw new Error(`worker ${options.worker}: health probe failed: ${failure.message}`);
  if (report === undefined) throw new Error(`worker ${options.worker}: probe printed no report; see ${run.logFile}`);
  return {
    worker: options.worker,
    gpus: options.gpus,
    python: String(report.python),
    torch: String(report.torch),
    cudaAvailable: report.cuda_available === true,
    cudaVisibleDevices: typeof report.cuda_visible_devices === 'string' ? report.cuda_visible_devices : null,
    devices: Array.isArray(report.devices) ? report.devices.map(String) : [],
    threads: Number(report.threads),
  };
}

/** One log line per probe: GPU id, torch, CUDA. */
export function describeProbe(report: ProbeReport): string {
  const gpu = report.gpus.length > 0 ? `GPU ${report.gpus.join(',')}` : 'no GPU';
  const cuda = report.cudaAvailable ? `cuda yes (${report.devices.join(', ') || 'no device name'})` : 'cuda no';
  return `${report.worker}: ${gpu}, torch ${report.torch}, ${cuda}, ${report.threads} threads, python ${report.python}`;
}
