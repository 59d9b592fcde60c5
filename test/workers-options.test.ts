import * as os from 'node:os';
import test from 'ava';
import { csrEnv } from '../src/env';
import { CPU_QUEUE, GPU_QUEUE, hostQueue } from '../src/shared/task-queues';
import { compileWorkersOptions, planWorkers, type WorkerKind } from '../workers';

const env = csrEnv({ CSR_HOME: '/tmp/csr-options-test' });

test('the CPU worker runs workflows; one pinned worker per GPU, stand-ins share the cores, the host worker has every GPU', (t) => {
  const kind: WorkerKind[] = ['cpu', 'gpu', 'host'];
  const options = compileWorkersOptions({ kind, gpus: ['0', '1'], standIns: 2, hostId: 'h1', env, workflowsPath: __filename });
  const plans = planWorkers(options);
  const threads = String(Math.max(1, Math.floor(os.availableParallelism() / 2)));
  const compute = { slots: 1, runsWorkflows: false };
  t.deepEqual(plans, [
    { name: 'cpu', taskQueue: CPU_QUEUE, gpus: [], workerEnv: { CSR_TORCH_THREADS: threads }, slots: 2, runsWorkflows: true },
    { name: 'gpu-0', taskQueue: GPU_QUEUE, gpus: ['0'], workerEnv: {}, ...compute },
    { name: 'gpu-1', taskQueue: GPU_QUEUE, gpus: ['1'], workerEnv: {}, ...compute },
    { name: 'stand-in-0', taskQueue: GPU_QUEUE, gpus: [], workerEnv: { CSR_TORCH_THREADS: threads }, ...compute },
    { name: 'stand-in-1', taskQueue: GPU_QUEUE, gpus: [], workerEnv: { CSR_TORCH_THREADS: threads }, ...compute },
    { name: 'host', taskQueue: hostQueue('h1'), gpus: ['0', '1'], workerEnv: {}, ...compute },
  ]);
  t.deepEqual(
    planWorkers(compileWorkersOptions({ kind: 'gpu', gpus: ['3'], cpuActivitySlots: 5, env })).map((plan) => plan.name),
    ['gpu-3'],
    'no CPU worker unless asked for',
  );
});

test('bad combinations are refused before anything starts, naming the option', (t) => {
  t.throws(() => compileWorkersOptions({ kind: 'gpu', env }), { message: /kind 'gpu': give gpus/ });
  t.throws(() => compileWorkersOptions({ kind: 'host', env }), { message: /kind 'host'/ });
  t.throws(() => compileWorkersOptions({ kind: [], env }), { message: /at least one/ });
  t.throws(() => compileWorkersOptions({ kind: 'gpu', gpus: ['0', '0'], env }), { message: /names a GPU twice/ });
  t.throws(() => compileWorkersOptions({ kind: 'gpu', gpus: ['0;rm'], env }), { message: /GPU ids/ });
  t.throws(() => compileWorkersOptions({ kind: 'gpu', standIns: -1, env }), { message: /standIns/ });
  t.throws(() => compileWorkersOptions({ kind: 'cpu', hostId: 'a b', env, workflowsPath: __filename }), {
    message: /hostId/,
  });
});

test('defaults are documented values', (t) => {
  const options = compileWorkersOptions({ kind: 'gpu', standIns: 1, env });
  t.is(options.heartbeatEveryMs, 10_000);
  t.is(options.killGraceMs, 10_000);
  t.is(options.cpuActivitySlots, 2);
  t.true(options.probe);
  t.is(options.namespace, 'default');
  t.deepEqual(options.connectionOptions, { address: env.temporalAddress });
});

test('the fork server is on unless CSR_FORK_SERVER=0 or forkServer: false; any other value is refused', (t) => {
  const saved = process.env.CSR_FORK_SERVER;
  try {
    delete process.env.CSR_FORK_SERVER;
    t.true(compileWorkersOptions({ kind: 'gpu', standIns: 1, env }).forkServer);
    t.false(compileWorkersOptions({ kind: 'gpu', standIns: 1, env, forkServer: false }).forkServer);
    process.env.CSR_FORK_SERVER = '0';
    t.false(compileWorkersOptions({ kind: 'gpu', standIns: 1, env }).forkServer);
    process.env.CSR_FORK_SERVER = 'yes';
    t.throws(() => compileWorkersOptions({ kind: 'gpu', standIns: 1, env }), { message: /CSR_FORK_SERVER: expected 0/ });
  } finally {
    if (saved === undefined) delete process.env.CSR_FORK_SERVER;
    else process.env.CSR_FORK_SERVER = saved;
  }
});
