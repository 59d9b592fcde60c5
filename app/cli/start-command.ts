/** `npm start` / `csr start`: the main job on the embedded default stack, as easy as a notebook cell. */
import { upCommand } from './stack-commands';
import { runCommand } from './run-command';

export async function startCommand(options: { config: string; gpuWorkers: number }): Promise<number> {
  console.log('== stack');
  const up = await upCommand({ gpuWorkers: options.gpuWorkers });
  if (up !== 0) {
    console.error('the stack is not healthy; see the logs under $CSR_HOME/logs');
    return up;
  }
  console.log(`\n== run ${options.config}`);
  const code = await runCommand({ config: options.config, wait: true });
  console.log('\nThe stack stays up (workers included) until: npx csr down');
  return code;
}
