/**
 * `startWorkers`: the workers of one machine in one Node process.
 *
 * Process model: every worker is its own `Worker` instance in this process; workers of one task
 * queue each get a connection of their own (the SDK refuses two workers of one queue on one
 * connection, and all GPU workers poll `csr-gpu`). GPU pinning needs no process per GPU because
 * Node never touches a GPU: each worker's activities are built with its own GPU id, and the pin
 * (CUDA_VISIBLE_DEVICES) is set in the environment of the compute child it launches. One process means one place that handles
 * SIGINT/SIGTERM (the SDK's runtime shuts every worker down, which cancels running activities, which
 * kill their process groups) and one lease owner pid to reap after a crash.
 */
import { NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { QuietLogger } from './quiet-logger';
import * as path from 'node:path';
import { ForkServer, createActivities } from '../activities';
import { GpuLeases } from '../src/gpu/leases';
import { credentialVariables } from '../src/mlflow/auth';
import { describeTemporalSecurity, type TemporalConnectionOptions } from '../src/client/temporal-auth';
import { describeProbe, probeHealth, type ProbeReport } from './health-probe';
import { CPU_QUEUE, GPU_QUEUE, hostQueue } from '../src/shared/task-queues';
import { workerIdentity } from '../src/shared/worker-identity';
import {
  type CompiledWorkersOptions,
  type StartWorkersOptions,
  type WorkerPlan,
  compileWorkersOptions,
} from './worker-options';

/** One started worker. */
export interface StartedWorker {
  name: string;
  taskQueue: string;
  identity: string;
  worker: Worker;
}

/** The running workers of this process. */
export interface RunningWorkers {
  workers: StartedWorker[];
  probes: ProbeReport[];
  /** Resolves once every worker has stopped and the connections opened here are closed; rejects on a worker error. */
  done: Promise<void>;
  /** Stop every worker (running steps are cancelled and their processes killed) and wait for `done`. */
  shutdown(): Promise<void>;
}

/** The workers the options ask for: the CPU worker first, then the GPU-queue and host-queue workers. */
export function planWorkers(options: CompiledWorkersOptions): WorkerPlan[] {
  const plans: WorkerPlan[] = [];
  const threads = { CSR_TORCH_THREADS: String(options.torchThreads) };
  const compute = { slots: 1, runsWorkflows: false };
  if (options.kinds.has('cpu')) {
    plans.push({
      name: 'cpu',
      taskQueue: CPU_QUEUE,
      gpus: [],
      workerEnv: threads,
      slots: options.cpuActivitySlots,
      runsWorkflows: true,
    });
  }
  if (options.kinds.has('gpu')) {
    for (const id of options.gpus) {
      plans.push({ name: `gpu-${id}`, taskQueue: GPU_QUEUE, gpus: [id], workerEnv: {}, ...compute });
    }
    for (let i = 0; i < options.standIns; i++) {
      plans.push({ name: `stand-in-${i}`, taskQueue: GPU_QUEUE, gpus: [], workerEnv: threads, ...compute });
    }
  }
  if (options.kinds.has('host')) {
    plans.push({
      name: 'host',
      taskQueue: hostQueue(options.hostId),
      gpus: [...options.gpus],
      workerEnv: options.gpus.length > 0 ? {} : threads,
      ...compute,
    });
  }
  return plans;
}

const identityOf = (options: CompiledWorkersOptions, name: string) => workerIdentity(name, options.hostId, process.pid);

/** Start the workers of this machine; see the module comment for the process model. */
export async function startWorkers(raw: StartWorkersOptions): Promise<RunningWorkers> {
  const options = compileWorkersOptions(raw);
  const { env, log } = options;
  try {
    // Before the first connection; a process that installed its own runtime (a test) keeps it.
    Runtime.install({ logger: new QuietLogger('INFO') });
  } catch {
    // Already installed.
  }
  // Compute steps get the credential-free tracking URI from the workflow; `user:pass@` of this worker's
  // MLFLOW_TRACKING_URI reaches their MLflow client as the official variables instead.
  Object.assign(process.env, credentialVariables(process.env));
  const plans = planWorkers(options);
  const leaseTables: GpuLeases[] = [];
  const newLeases = (owner: string) => {
    const leases = new GpuLeases({
      runDir: env.runDir,
      hostId: options.hostId,
      owner,
      killGraceMs: options.killGraceMs,
      log,
    });
    leaseTables.push(leases);
    return leases;
  };
  const closeLeases = () => leaseTables.forEach((leases) => leases.close());
  // One warm compute process per worker, started now so its imports overlap the probes and the connection;
  // until it is ready (and whenever it is down) the worker spawns its steps. The CPU worker's is light (no
  // torch): its steps (curate, and the headline plot its tracking activities draw) import none.
  const forkServers = new Map<string, ForkServer>();
  if (options.forkServer) {
    for (const plan of plans) {
      forkServers.set(
        plan.name,
        new ForkServer({
          python: env.python,
          // The environment its steps get, less what each step sets (CUDA_VISIBLE_DEVICES of its leased GPUs).
          env: { ...process.env, ...plan.workerEnv, CUDA_VISIBLE_DEVICES: plan.gpus.join(','), PYTHONUNBUFFERED: '1' },
          logFile: path.join(env.logDir, `fork-server-${options.hostId}-${plan.name}.log`),
          name: plan.name,
          light: plan.runsWorkflows,
          log,
        }),
      );
    }
  }
  const stopForkServers = () => Promise.all([...forkServers.values()].map((server) => server.stop()));
  const lightActivities = (forkServer: ForkServer | undefined) =>
    typeof options.lightActivities === 'function' ? options.lightActivities({ forkServer }) : options.lightActivities;

  try {
    // Before taking any task: a previous worker that died may have left a step running on our GPUs.
    if (options.gpus.length > 0) {
      for (const reaped of await newLeases(identityOf(options, 'reaper')).reapStale(options.gpus)) {
        const { owner, pid } = reaped.record ?? {};
        if (reaped.outcome === 'killed') {
          log(`GPU ${reaped.gpu}: killed process group ${pid} left running by dead worker ${owner}; lease removed`);
        } else if (reaped.outcome === 'removed') {
          log(`GPU ${reaped.gpu}: removed a stale lease of dead worker ${owner}`);
        } else if (reaped.outcome === 'held') {
          log(`GPU ${reaped.gpu}: leased by live worker ${owner}; steps here wait until it lets go`);
        }
      }
    }
    const probes = options.probe ? await runProbes(options, plans.filter((plan) => !plan.runsWorkflows)) : [];
    for (const report of probes) {
      log(describeProbe(report));
      if (report.gpus.length > 0 && !report.cudaAvailable) {
        log(
          `warning: ${report.worker}: torch sees no CUDA device with CUDA_VISIBLE_DEVICES=${report.gpus.join(',')}; ` +
            'its steps will run on the CPU (install a CUDA build of torch, or use standIns on a machine without GPUs)',
        );
      }
    }

    if (!options.connection) {
      const { address } = options.connectionOptions;
      // Which security is in use, never the key or certificate: an operator sees at once whether TLS is on.
      log(`Temporal at ${address} (${describeTemporalSecurity(options.connectionOptions as TemporalConnectionOptions)})`);
    }
    const connections: NativeConnection[] = [];
    const sharedQueues = new Set<string>();
    const connect = async (taskQueue: string) => {
      if (options.connection && !sharedQueues.has(taskQueue)) {
        sharedQueues.add(taskQueue);
        return options.connection;
      }
      const connection = await NativeConnection.connect(options.connectionOptions);
      connections.push(connection);
      return connection;
    };
    const closeConnections = () => Promise.all(connections.map((connection) => connection.close()));
    const common = {
      namespace: options.namespace,
      // Steps get cancelled at once on shutdown; the force time only bounds a kill that hangs.
      shutdownGraceTime: 0,
      shutdownForceTime: options.killGraceMs + 30_000,
      // Steps heartbeat on their own timer (activities.heartbeat_every). Left to the SDK's throttle
      // (0.8 x the heartbeat timeout, up to 60 s), progress in `csr status` and the cancellation that
      // comes back with a heartbeat's reply would lag by as much; a step's heartbeat goes out at once.
      maxHeartbeatThrottleInterval: 1_000,
      defaultHeartbeatThrottleInterval: 1_000,
    };
    const started: StartedWorker[] = [];
    try {
      for (const plan of plans) {
        const identity = identityOf(options, plan.name);
        const activities = createActivities({
          env,
          gpus: plan.gpus,
          leases: plan.gpus.length > 0 ? newLeases(identity) : undefined,
          workerEnv: plan.workerEnv,
          workerId: identity,
          hostQueue: hostQueue(options.hostId),
          heartbeatEveryMs: options.heartbeatEveryMs,
          killGraceMs: options.killGraceMs,
          forkServer: forkServers.get(plan.name),
        });
        const worker = await Worker.create({
          ...common,
          connection: await connect(plan.taskQueue),
          identity,
          taskQueue: plan.taskQueue,
          ...(plan.runsWorkflows
            ? { workflowsPath: options.workflowsPath, activities: { ...activities, ...lightActivities(forkServers.get(plan.name)) } }
            : { activities }),
          maxConcurrentActivityTaskExecutions: plan.slots,
        });
        started.push({ name: plan.name, taskQueue: plan.taskQueue, identity, worker });
      }
    } catch (error) {
      await Promise.all(
        started.map(async ({ worker }) => {
          const running = worker.run();
          worker.shutdown();
          await running.catch(() => undefined);
        }),
      );
      await closeConnections();
      throw error;
    }

    const runs = started.map(({ worker }) => worker.run());
    const stopAll = () => {
      for (const { worker } of started) if (worker.getState() === 'RUNNING') worker.shutdown();
    };
    // One worker failing takes the others down, so the process exits and a supervisor can restart it whole.
    runs.forEach((run) => run.catch(stopAll));
    const done = Promise.allSettled(runs).then(async (results) => {
      closeLeases();
      // After the workers: their running steps were cancelled and their groups killed first.
      await stopForkServers();
      await closeConnections();
      const failed = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
      if (failed) throw failed.reason;
    });
    for (const { name, taskQueue, identity } of started) log(`worker ${name} polling ${taskQueue} as ${identity}`);
    return {
      workers: started,
      probes,
      done,
      shutdown: async () => {
        stopAll();
        await done;
      },
    };
  } catch (error) {
    closeLeases();
    await stopForkServers();
    throw error;
  }
}

async function runProbes(options: CompiledWorkersOptions, plans: WorkerPlan[]): Promise<ProbeReport[]> {
  // Stand-ins share one environment: one probe speaks for all of them.
  const probed = plans.filter((plan) => plan.gpus.length > 0 || plan === plans.find((p) => p.gpus.length === 0));
  return Promise.all(
    probed.map((plan) =>
      probeHealth({
        env: options.env,
        host: options.hostId,
        worker: plan.name,
        gpus: plan.gpus,
        childEnv: {
          ...process.env,
          ...plan.workerEnv,
          CUDA_VISIBLE_DEVICES: plan.gpus.join(','),
          PYTHONUNBUFFERED: '1',
        },
      }),
    ),
  );
}
