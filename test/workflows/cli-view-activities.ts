/** The stand-in run's one activity: `generate shard-0`, heartbeating progress as a compute step does. */
import { Context } from '@temporalio/activity';

export async function fakeStep(ms: number): Promise<void> {
  const total = 64;
  const started = Date.now();
  for (;;) {
    const done = Math.min(total, Math.floor(((Date.now() - started) / ms) * total));
    Context.current().heartbeat({ step: 'generate', label: 'shard-0', done, total, unit: 'prompts', rate: 12.5, eta_s: null });
    if (done >= total) return;
    await Context.current().sleep(200);
  }
}
