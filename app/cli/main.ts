/**
 * `npx csr`: the command line of the project. Every command validates its input before it starts
 * anything; a bad config exits with code 2 and one line per bad field.
 */
import { Command, InvalidArgumentError } from 'commander';
import { ConfigError, MissingConfigError } from '../../src/config';
import { TemporalAuthError } from '../../src/client/temporal-auth';
import { JUDGE_KEY_ENVS } from '../../src/config/judge-key';

/** Commander collector for a repeatable option. */
function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function integer(name: string, min = 0) {
  return (value: string): number => {
    const parsed = Number(value);
    if (!Number.isInteger(parsed) || parsed < min) throw new InvalidArgumentError(`${name}: expected integer >= ${min}, got "${value}"`);
    return parsed;
  };
}

/**
 * Run a command module loaded lazily with `require` (so `--help` stays fast; `import()` would need
 * tsx's ESM loader, which the CommonJS entry point does not register) and turn its result into the
 * exit code.
 */
function action<A extends unknown[]>(load: () => Promise<(...args: A) => Promise<number>>) {
  return async (...args: A) => {
    try {
      const fn = await load();
      process.exitCode = await fn(...args);
    } catch (error) {
      if (error instanceof ConfigError) {
        console.error(`invalid config ${error.message}`);
        // A missing file is a missing input (3), as for compute steps; anything else about it is a bad input (2).
        process.exitCode = error instanceof MissingConfigError ? 3 : 2;
        return;
      }
      console.error(`error: ${(error as Error).message}`);
      // A Temporal TLS / API key setting that cannot work is a bad input, like a bad config.
      process.exitCode = error instanceof TemporalAuthError ? 2 : 1;
    }
  };
}

/** A completed run has nothing to resume: say so (exit 0) rather than plan a resume of nothing. */
async function resumeUnlessDone<O>(id: string, options: O, resume: (id: string, options: O) => Promise<number>): Promise<number> {
  const { connectClient } = require('../../src/client/temporal') as typeof import('../../src/client/temporal');
  const { nothingToResume } = require('./resume-check') as typeof import('./resume-check');
  const done = await nothingToResume(await connectClient(), id);
  if (done === undefined) return resume(id, options);
  console.log(done);
  return 0;
}

export function buildProgram(): Command {
  const program = new Command('csr')
    .description('Calibrated Self-Rewarding for vision-language models, as durable Temporal workflows')
    .showHelpAfterError();

  program
    .command('start')
    .description('the main job: bring the stack up and run configs/toy.yaml to the end, with live progress')
    .option('--config <file>', 'config to run', 'configs/toy.yaml')
    .option('--gpu-workers <n>', 'CPU stand-ins for GPU workers', integer('--gpu-workers', 1), 1)
    .action(action(async () => (require('./start-command') as typeof import('./start-command')).startCommand));

  program
    .command('up')
    .description('start the embedded Temporal and MLflow servers and the workers in the background')
    .option('--gpu-workers <n>', 'CPU stand-ins for GPU workers (no GPUs here)', integer('--gpu-workers', 1))
    .option('--gpus <ids>', 'GPU ids to start one pinned worker each for, e.g. 0,1')
    .option('--no-workers', 'start the servers only')
    .option('--worker-timeout <s>', 'seconds to wait for the workers to poll their task queues (default 60)', integer('--worker-timeout'))
    .action(action(async () => (require('./stack-commands') as typeof import('./stack-commands')).upCommand));

  program
    .command('down')
    .description('stop the workers and the embedded servers (their data stays in CSR_HOME)')
    .action(action(async () => (require('./stack-commands') as typeof import('./stack-commands')).downCommand));

  program
    .command('health')
    .description('is each service of the stack answering?')
    .option('--json', 'machine-readable output')
    .action(action(async () => (require('./stack-commands') as typeof import('./stack-commands')).healthCommand));

  program
    .command('run')
    .description('start a CSR run from a config file')
    .requiredOption('--config <file>', 'YAML config (see configs/)')
    .option('--wait', 'follow the run until it ends, with live progress')
    .option('--resume-from <id>', 'resume a failed run instead: reuse its completed steps')
    .action(
      action(async () => {
        const { runCommand } = require('./run-command') as typeof import('./run-command');
        const { resumeCommand } = require('./resume-command') as typeof import('./resume-command');
        return async (options: { config: string; wait?: boolean; resumeFrom?: string }) =>
          options.resumeFrom ? resumeUnlessDone(options.resumeFrom, { wait: options.wait }, resumeCommand) : runCommand(options);
      }),
    );

  program
    .command('sweep')
    .description('a grid of runs (cells x seeds) as one workflow, nested in one MLflow run; prints mean ± sd per cell')
    .option('--config <file>', 'YAML config every cell starts from')
    .option('--grid <key=values>', 'a dotted config key and its values, e.g. reward.alpha=0,0.5,1 (repeatable)', (v: string, all: string[] = []) => [...all, v])
    .option('--seeds <n>', "seeds per cell: the config's seed + 0..N-1", integer('--seeds', 1))
    .option('--max-parallel <n>', 'child runs at once (default: all; the workers limit the real work)', integer('--max-parallel', 1))
    .option('--wait', 'follow the sweep until it ends and print its table')
    .option('--json', 'wait, then print the table as JSON on stdout (progress goes to stderr)')
    .option('--metrics <names>', 'columns of the printed table, e.g. toy_chair/CHAIR_I,toy_chair/recall')
    .option('--resume-from <id>', 'start sweep <id> again: finished cells and steps are reused')
    .action(action(async () => (require('./sweep/command') as typeof import('./sweep/command')).sweepCommand));

  program
    .command('resume <id>')
    .description('start a new run that reuses every completed step of run <id> and computes only what is missing')
    .option('--dry-run', 'show which iterations and steps would re-run, and start nothing')
    .option('--wait', 'follow the new run until it ends')
    .action(
      action(async () => {
        const { resumeCommand } = require('./resume-command') as typeof import('./resume-command');
        return (id: string, options: { dryRun?: boolean; wait?: boolean }) => resumeUnlessDone(id, options, resumeCommand);
      }),
    );

  program
    .command('status <id>')
    .description("a run's (or sweep's) state, true start and duration, steps (items total / reused / computed) and summary")
    .option('--json', 'machine-readable output')
    .option('--wide', 'every headline metric and the preference-pair statistics in the summary')
    .action(action(async () => (require('./status-command') as typeof import('./status-command')).statusCommand));

  program
    .command('follow <id>')
    .description('re-attach to a run: live progress until it ends, then its summary (Ctrl-C detaches; the run goes on)')
    .option('--wide', 'every headline metric and the preference-pair statistics in the summary')
    .action(
      action(async () => (require('./follow') as typeof import('./follow')).followCommand),
    );

  program
    .command('list')
    .description('runs and sweeps: queued, running and done, with their true start')
    .option('--json', 'machine-readable output')
    .option('--limit <n>', 'at most this many runs', integer('--limit', 1), 50)
    .action(action(async () => (require('./status-command') as typeof import('./status-command')).listCommand));

  program
    .command('cancel <id>')
    .description('cancel a run: its running steps stop and their processes are killed')
    .action(action(async () => (require('./status-command') as typeof import('./status-command')).cancelCommand));

  program
    .command('pause <id>')
    .description('pause a run after the step in flight')
    .action(action(async () => async (id: string) => (require('./status-command') as typeof import('./status-command')).signalCommand(id, 'pause')));

  program
    .command('unpause <id>')
    .description('let a paused run go on')
    .action(action(async () => async (id: string) => (require('./status-command') as typeof import('./status-command')).signalCommand(id, 'resume')));

  program
    .command('set <id> <assignments...>')
    .description('change a running run from its next iteration on: iterations=N or section.field=value (generate, reward, curate, dpo)')
    .action(action(async () => (require('./set-params-command') as typeof import('./set-params-command')).setParamsCommand));

  program
    .command('worker')
    .description('run workers in the foreground: a CPU worker, GPU-pinned workers, or CPU stand-ins for them')
    .option('--cpu', 'the CPU worker: workflows and light activities')
    .option('--gpus <ids>', 'one worker per GPU id, pinned with CUDA_VISIBLE_DEVICES, one task slot each')
    .option('--stand-ins <n>', 'CPU stand-ins for GPU workers on a machine without GPUs', integer('--stand-ins', 1))
    .option('--host', 'the host worker that claims several GPUs of this host for multi-GPU steps')
    .action(action(async () => (require('./worker-command') as typeof import('./worker-command')).workerCommand));

  const toyworld = program.command('toyworld').description('the synthetic world with tiny models that runs CSR on a CPU');
  toyworld
    .command('build')
    .description('build the toy world into $CSR_HOME/toyworld/<hash>/ (a no-op when cached)')
    .option('--seed <n>', 'world seed', integer('--seed'), 0)
    .option('--json', 'print the raw progress events')
    .action(action(async () => (require('./toyworld-command') as typeof import('./toyworld-command')).toyworldBuildCommand));

  program
    .command('score <benchmark>')
    .description('score an answer file with the benchmark\'s official metric')
    .option('--data <path>', "folder of the benchmark's official release, or one POPE split file / MMBench TSV (toy benchmarks: the built toy world's by default)")
    .requiredOption('--answers <file>', 'JSONL of {"question_id", "text"}: this project\'s or LLaVA\'s eval scripts\'')
    .option('--split <name>', 'only this split, where the benchmark has splits')
    .option('--limit <n>', 'only the first N questions (0 = all)', integer('--limit'), 0)
    .option('--option <key=value>', 'a benchmark-specific field (docs/benchmarks.md); repeatable', collect, [])
    .option('--judge-url <url>', 'OpenAI-compatible endpoint of the LLM judge (MM-Vet, LLaVA-Bench, MMBench matching)')
    .option('--judge-model <name>', 'judge model name')
    .option('--judge-api-key-env <var>', `environment variable holding the judge's API key (listed in ${JUDGE_KEY_ENVS})`)
    .option('--judge-cache <file>', "JSONL keeping the judge's replies: scoring again asks nothing")
    .option('--format <kind>', "answer ids: auto (detected), csr (this project's) or llava (LLaVA's eval scripts')")
    .option('--json', 'machine-readable output')
    .action(action(async () => (require('./score-command') as typeof import('./score-command')).scoreCommand));

  const schedule = program.command('schedule').description('recurring CSR runs on Temporal Schedules');
  schedule
    .command('create <id>')
    .description('create a schedule that starts a run of a config')
    .requiredOption('--config <file>', 'YAML config')
    .option('--cron <expr>', 'cron expression, e.g. "0 2 * * *" for nightly at 02:00')
    .option('--every <interval>', 'fixed interval, e.g. 24h')
    .option('--overlap <policy>', 'what to do when the previous run still runs: skip, buffer-one, cancel-other, allow-all', 'skip')
    .option('--paused', 'create it paused')
    .action(action(async () => (require('./schedule-command') as typeof import('./schedule-command')).scheduleCreate));
  schedule
    .command('list')
    .option('--json', 'machine-readable output')
    .action(action(async () => (require('./schedule-command') as typeof import('./schedule-command')).scheduleList));
  schedule
    .command('pause <id>')
    .action(action(async () => async (id: string) => (require('./schedule-command') as typeof import('./schedule-command')).schedulePause(id, true)));
  schedule
    .command('unpause <id>')
    .action(action(async () => async (id: string) => (require('./schedule-command') as typeof import('./schedule-command')).schedulePause(id, false)));
  schedule
    .command('delete <id>')
    .action(action(async () => (require('./schedule-command') as typeof import('./schedule-command')).scheduleDelete));

  return program;
}

if (require.main === module || process.env.CSR_CLI_MAIN === '1') {
  buildProgram()
    .parseAsync(process.argv)
    .catch((error: unknown) => {
      console.error(`error: ${(error as Error).message}`);
      process.exitCode = 1;
    });
}
