/**
 * Is a worker process polling its task queues? Asked of Temporal itself: DescribeTaskQueue lists the
 * recent pollers of a queue by identity (`<worker>@<host>/<pid>`, src/shared/worker-identity.ts), so a
 * worker process counts once the server has seen it ask for work on every queue it serves. Its probes,
 * workflow bundle and connections all come before its first poll.
 */
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { identityPid } from '../../src/shared/worker-identity';
import { CPU_QUEUE, GPU_QUEUE } from '../../src/shared/task-queues';

const { TaskQueueKind, TaskQueueType } = temporal.api.enums.v1;

/** One kind of task of one task queue that a worker polls. */
export interface ServedQueue {
  taskQueue: string;
  type: 'workflow' | 'activity';
}

/** The queues a worker process of the stack serves, by its name (`worker-<name>.pid`); undefined for others. */
export function servedQueues(workerName: string): ServedQueue[] | undefined {
  if (workerName === 'cpu') {
    return [
      { taskQueue: CPU_QUEUE, type: 'workflow' },
      { taskQueue: CPU_QUEUE, type: 'activity' },
    ];
  }
  if (workerName === 'gpu' || workerName === 'gpu-standins') return [{ taskQueue: GPU_QUEUE, type: 'activity' }];
  return undefined;
}

/** `csr-cpu (workflow)` */
export const describeQueue = (queue: ServedQueue) => `${queue.taskQueue} (${queue.type})`;

/** Pids of the processes whose workers poll `queue`, as Temporal saw them. */
export async function pollingPids(client: Client, queue: ServedQueue): Promise<Set<number>> {
  const response = await client.workflowService.describeTaskQueue({
    namespace: client.options.namespace,
    taskQueue: { name: queue.taskQueue, kind: TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
    taskQueueType: queue.type === 'workflow' ? TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW : TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
  });
  const pids = (response.pollers ?? []).map((poller) => identityPid(poller.identity ?? ''));
  return new Set(pids.filter((pid): pid is number => pid !== undefined));
}

/** The queues of `queues` that process `pid` does not poll (yet). */
export async function queuesNotPolled(client: Client, pid: number, queues: ServedQueue[]): Promise<ServedQueue[]> {
  const polled = await Promise.all(queues.map(async (queue) => (await pollingPids(client, queue)).has(pid)));
  return queues.filter((_, i) => !polled[i]);
}

/** A worker process `csr up` waits for. */
export interface StartingWorker {
  name: string;
  pid: number;
  logFile: string;
  queues: ServedQueue[];
  /** False once the process is gone. */
  alive(): boolean;
}

/** Some worker did not poll in time (or died first); nothing was stopped. */
export class WorkersNotPollingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WorkersNotPollingError';
  }
}

/**
 * Resolve once every worker polls all of its queues; reject with {@link WorkersNotPollingError} naming each
 * worker still missing and its log once `timeoutMs` passes or one of them exits. Asks Temporal every 250 ms.
 */
export async function waitForPollers(
  client: Client,
  workers: StartingWorker[],
  options: { timeoutMs: number; log?: (line: string) => void },
): Promise<void> {
  const started = Date.now();
  let waiting = workers;
  const missing = new Map<StartingWorker, ServedQueue[]>(workers.map((worker) => [worker, worker.queues]));
  let lastError = '';
  for (;;) {
    const checked = await Promise.all(
      waiting.map(async (worker) => {
        try {
          missing.set(worker, await queuesNotPolled(client, worker.pid, worker.queues));
        } catch (error) {
          lastError = `; Temporal said: ${(error as Error).message.split('\n')[0]}`;
        }
        return worker;
      }),
    );
    waiting = checked.filter((worker) => (missing.get(worker) ?? []).length > 0);
    for (const worker of checked.filter((w) => !waiting.includes(w))) {
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      options.log?.(`worker    ${worker.name} polling ${worker.queues.map(describeQueue).join(', ')} (after ${seconds} s)`);
    }
    if (waiting.length === 0) return;
    const dead = waiting.filter((worker) => !worker.alive());
    const late = Date.now() - started >= options.timeoutMs;
    if (dead.length > 0 || late) {
      const lines = (late ? waiting : dead).map((worker) =>
        worker.alive()
          ? `worker ${worker.name} (pid ${worker.pid}) is not polling ${missing.get(worker)?.map(describeQueue).join(', ')} ` +
            `after ${options.timeoutMs / 1000} s; see ${worker.logFile}`
          : `worker ${worker.name} (pid ${worker.pid}) exited before polling; see ${worker.logFile}`,
      );
      throw new WorkersNotPollingError(
        `${lines.join('\n')}${lastError}\nnothing was stopped: \`npx csr health\` shows when it polls, \`npx csr down\` stops the stack`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
