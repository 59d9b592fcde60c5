/**
 * `csr schedule create|list|pause|unpause|delete`: recurring CSR runs on Temporal Schedules. The
 * overlap policy defaults to SKIP, so a nightly run never starts while the previous one still holds
 * the GPUs.
 */
import { ScheduleOverlapPolicy } from '@temporalio/client';
import type { Duration } from '@temporalio/common';
import { loadConfig } from '../../src/config';
import { ensureSearchAttributes } from '../../src/client/search-attributes';
import { connectClient } from '../../src/client/temporal';
import { CPU_QUEUE } from '../../src/shared/task-queues';
import { newRunInput } from './run-command';
import { table } from './output';
import { isSafeKey } from '../../src/shared/safe-path';

const OVERLAP: Record<string, ScheduleOverlapPolicy> = {
  skip: ScheduleOverlapPolicy.SKIP,
  'buffer-one': ScheduleOverlapPolicy.BUFFER_ONE,
  'cancel-other': ScheduleOverlapPolicy.CANCEL_OTHER,
  'allow-all': ScheduleOverlapPolicy.ALLOW_ALL,
};

export async function scheduleCreate(
  id: string,
  options: { config: string; cron?: string; every?: string; overlap: string; paused?: boolean },
): Promise<number> {
  const overlap = OVERLAP[options.overlap];
  if (overlap === undefined) {
    console.error(`--overlap: expected one of ${Object.keys(OVERLAP).join(', ')}, got "${options.overlap}"`);
    return 2;
  }
  // The id starts every scheduled run's workflow id, which names its artifact folder.
  if (!isSafeKey(id)) {
    console.error(`schedule id: expected letters, digits, ., - and _, got ${JSON.stringify(id).slice(0, 80)}`);
    return 2;
  }
  if (!options.cron === !options.every) {
    console.error('give exactly one of --cron "0 2 * * *" or --every 24h');
    return 2;
  }
  const config = loadConfig(options.config);
  const input = newRunInput(config, options.config);
  const client = await connectClient();
  await client.schedule.create({
    scheduleId: id,
    spec: options.cron ? { cronExpressions: [options.cron] } : { intervals: [{ every: options.every as Duration }] },
    action: {
      type: 'startWorkflow',
      workflowType: 'csrRun',
      taskQueue: CPU_QUEUE,
      // Each scheduled start gets its own workflow id (schedule id + time), so runs never collide.
      workflowId: `${id}-run`,
      // An empty run key makes each run take its own workflow id as key: its artifacts are its own.
      // Scheduled runs upsert the CSR search attributes too when the server has them.
      args: [{ ...input, runKey: '', ...((await ensureSearchAttributes(client)) ? { searchAttributes: true } : {}) }],
    },
    policies: { overlap, catchupWindow: '1 hour' },
    state: { paused: Boolean(options.paused), note: `CSR config ${options.config}` },
  });
  console.log(`schedule ${id} created (${options.cron ? `cron ${options.cron}` : `every ${options.every}`}, overlap ${options.overlap})`);
  return 0;
}

export async function scheduleList(options: { json?: boolean }): Promise<number> {
  const client = await connectClient();
  const rows: { id: string; paused: boolean; next?: string; recent?: string }[] = [];
  for await (const schedule of client.schedule.list()) {
    rows.push({
      id: schedule.scheduleId,
      paused: schedule.state.paused,
      next: schedule.info.nextActionTimes[0]?.toISOString(),
      recent: schedule.info.recentActions.at(-1)?.takenAt.toISOString(),
    });
  }
  if (options.json) console.log(JSON.stringify(rows, null, 2));
  else if (rows.length === 0) console.log('no schedules');
  else console.log(table([['schedule', 'paused', 'next run', 'last run'], ...rows.map((r) => [r.id, String(r.paused), r.next ?? '-', r.recent ?? '-'])]));
  return 0;
}

export async function schedulePause(id: string, pause: boolean): Promise<number> {
  const client = await connectClient();
  const handle = client.schedule.getHandle(id);
  if (pause) await handle.pause('paused from the csr CLI');
  else await handle.unpause('unpaused from the csr CLI');
  console.log(`schedule ${id} ${pause ? 'paused' : 'unpaused'}`);
  return 0;
}

export async function scheduleDelete(id: string): Promise<number> {
  const client = await connectClient();
  await client.schedule.getHandle(id).delete();
  console.log(`schedule ${id} deleted`);
  return 0;
}
