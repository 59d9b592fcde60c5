/**
 * The embedded stack of the end-to-end fault tests: Temporal dev server, MLflow server, a CPU worker
 * and one GPU stand-in worker, started by the stack's own code (`stackUp`, what `csr up` runs) on free
 * ports with a temporary CSR_HOME, plus what those tests need to break it: SIGKILL a worker with every
 * process group under it, SIGKILL the Temporal server, and read a step's files as they grow.
 */
import type { ExecutionContext } from 'ava';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { csrEnv, type CsrEnv } from '../../src/env';
import { stackDown, stackUp } from '../../app/stack/stack';
import { freePort } from '../../app/stack/free-port';
import { livePid } from '../../app/stack/process-group';
import { procState } from '../../src/gpu/process-groups';
import { temporalPidFile } from '../../app/stack/temporal-server';
import { repoRoot } from './temporal-harness';

/** A stack of the fault tests and its folders. */
export interface FaultStack {
  env: CsrEnv;
  /** `csr up` again: starts whatever of the stack is not running (a killed worker or server), adopts the rest. */
  up(): Promise<void>;
  /** `csr down`, then the temp CSR_HOME is removed (kept when CSR_KEEP_TEST_STATE is set). */
  close(): Promise<void>;
}

/**
 * Start a stack on free ports with its own CSR_HOME. It sets this process's environment (CSR_HOME,
 * the ports, no external servers), which the workers `stackUp` starts inherit: ava runs each test file
 * in its own process, so this changes nothing for other files.
 */
export async function startFaultStack(): Promise<FaultStack> {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'csr-faults-e2e-'));
  // freePort lets each port go before returning it, so two calls can name the same one: ask until three differ.
  const ports = new Set<number>();
  while (ports.size < 3) ports.add(await freePort());
  const [temporalPort, uiPort, mlflowPort] = [...ports];
  Object.assign(process.env, {
    CSR_HOME: home,
    CSR_TEMPORAL_PORT: String(temporalPort),
    CSR_TEMPORAL_UI_PORT: String(uiPort),
    CSR_MLFLOW_PORT: String(mlflowPort),
    // Shared between runs of this suite, outside the temp home: building the world takes minutes.
    CSR_TOYWORLD_ROOT: process.env.CSR_TOYWORLD_ROOT || path.join(os.tmpdir(), 'csr-faults-toyworld'),
    CSR_TORCH_THREADS: '1',
  });
  delete process.env.TEMPORAL_ADDRESS;
  delete process.env.MLFLOW_TRACKING_URI;
  const env = csrEnv();
  const up = async () => {
    await stackUp({ gpuWorkers: 1 }, env);
  };
  try {
    await up();
  } catch (error) {
    await stackDown(env).catch(() => undefined); // what did start
    throw error;
  }
  return {
    env,
    up,
    async close() {
      await stackDown(env).catch(() => undefined);
      if (!process.env.CSR_KEEP_TEST_STATE) fs.rmSync(home, { recursive: true, force: true });
    },
  };
}

/** Is `pid` a running process (a zombie is not)? */
export function running(pid: number): boolean {
  const stat = procState(pid);
  return stat !== undefined && stat.state !== 'Z' && stat.state !== 'X';
}

/** `root` and every process under it (children, their children, ...). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = procState(Number(entry));
    if (stat) children.set(stat.ppid, [...(children.get(stat.ppid) ?? []), Number(entry)]);
  }
  const tree = [root];
  for (let i = 0; i < tree.length; i++) tree.push(...(children.get(tree[i] as number) ?? []));
  return tree;
}

/**
 * SIGKILL a process and everything under it, group by group: the compute child runs in a process
 * group of its own (so its own group dies with it), and a crash of the machine would take both.
 * Returns once none of them runs. This test process's own group is never signalled.
 */
export async function killTree(root: number): Promise<{ pids: number[]; groups: number[] }> {
  const own = procState(process.pid)?.pgrp;
  const pids = processTree(root);
  const groups = [...new Set(pids.map((pid) => procState(pid)?.pgrp).filter((g): g is number => g !== undefined && g !== own))];
  for (const group of groups) {
    try {
      process.kill(-group, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone meanwhile (or killed with its group)
    }
  }
  const deadline = Date.now() + 10_000;
  while (pids.some(running)) {
    if (Date.now() > deadline) throw new Error(`still running after SIGKILL: ${pids.filter(running).join(', ')}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { pids, groups };
}

/** The pid the stack recorded for its GPU stand-in worker. */
export function gpuWorkerPid(env: CsrEnv): number {
  const pid = livePid(path.join(env.runDir, 'worker-gpu-standins.pid'));
  if (pid === undefined) throw new Error(`no live GPU worker recorded under ${env.runDir}`);
  return pid;
}

/** The pid the stack recorded for its Temporal dev server. */
export function temporalServerPid(env: CsrEnv): number {
  const pid = livePid(temporalPidFile(env.runDir));
  if (pid === undefined) throw new Error(`no live Temporal server recorded under ${env.runDir}`);
  return pid;
}

/** Complete lines (ending in a newline) of a JSONL file; 0 when it does not exist. */
export function completeLines(file: string): number {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return text.split('\n').length - 1;
  } catch {
    return 0;
  }
}

/** How many attempts of a step have started: its `logs/<step>-attempt-N.log` files. */
export function attemptsStarted(stepDir: string, step: string): number {
  try {
    return fs.readdirSync(path.join(stepDir, 'logs')).filter((name) => name.startsWith(`${step}-attempt-`)).length;
  } catch {
    return 0;
  }
}

/** The parsed manifest of a finished step, or undefined. */
export function readManifest(stepDir: string): Manifest | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(stepDir, 'manifest.json'), 'utf8')) as Manifest;
  } catch {
    return undefined;
  }
}

/** The fields of `manifest.json` these tests read. */
export interface Manifest {
  step: string;
  files: Record<string, { sha256: string; bytes: number }>;
  items_total: number;
  items_reused: number;
  items_computed: number;
  stats: Record<string, unknown>;
}

/** sha256 of a file, hex. */
export function sha256(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** Every folder under `root` that holds a `manifest.json`. */
export function stepFolders(root: string): string[] {
  const found: string[] = [];
  const walk = (dir: string) => {
    const entries = fs.readdirSync(dir, { withFileTypes: true });
    if (entries.some((e) => e.isFile() && e.name === 'manifest.json')) found.push(dir);
    for (const entry of entries) {
      // A step's own outputs (model weights, checkpoints) hold no step folders.
      if (entry.isDirectory() && !['logs', 'model', 'adapter', 'checkpoints'].includes(entry.name)) walk(path.join(dir, entry.name));
    }
  };
  walk(root);
  return found.sort();
}

/** Each step's per-item file and the key that names an item in it. */
export const ITEM_FILES: Record<string, { file: string; key: string }> = {
  generate: { file: 'trees.jsonl', key: 'id' },
  reward: { file: 'scored.jsonl', key: 'id' },
  evaluate: { file: 'answers.jsonl', key: 'question_id' },
};

/** Optimizer steps in a DPO folder's metrics.jsonl (training records carry `loss`; evaluation ones `eval_loss`), in order. */
export function dpoStepsLogged(dir: string): number[] {
  let text = '';
  try {
    text = fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .slice(0, -1) // a torn last line is not a record yet
    .map((line) => JSON.parse(line) as { step?: number; loss?: number })
    .filter((r) => typeof r.loss === 'number' && typeof r.step === 'number')
    .map((r) => r.step as number);
}

/**
 * Whole artifacts under `runDir`: each manifest's files match their hashes, reused + computed = total, each
 * per-item file holds every key once and one record per item, a DPO folder logs each optimizer step once.
 * `each` adds a test's own check per folder. Returns the folders checked.
 */
export function checkArtifacts(
  t: ExecutionContext<unknown>,
  runDir: string,
  each: (dir: string, manifest: Manifest, where: string) => void = () => undefined,
): string[] {
  const found = stepFolders(runDir);
  t.true(found.length >= 6, `step folders: ${found.join(', ')}`);
  for (const dir of found) {
    const manifest = readManifest(dir)!;
    const where = path.relative(runDir, dir);
    for (const [name, entry] of Object.entries(manifest.files)) {
      t.is(sha256(path.join(dir, name)), entry.sha256, `${where}/${name} matches its manifest`);
    }
    t.is(manifest.items_reused + manifest.items_computed, manifest.items_total, `${where}: reused + computed = total`);
    const items = ITEM_FILES[manifest.step];
    if (items) {
      const keys = fs
        .readFileSync(path.join(dir, items.file), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => String((JSON.parse(line) as Record<string, unknown>)[items.key]));
      t.is(new Set(keys).size, keys.length, `${where}/${items.file}: every ${items.key} once`);
      t.is(keys.length, manifest.items_total, `${where}/${items.file}: one record per item`);
    }
    if (manifest.step === 'dpo') {
      const steps = dpoStepsLogged(dir);
      t.is(new Set(steps).size, steps.length, `${where}/metrics.jsonl: every optimizer step once (${steps.join(',')})`);
    }
    each(dir, manifest, where);
  }
  return found;
}

/** Poll `probe` every `everyMs` until it returns a value; fail after `timeoutMs`. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs: number, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

export { repoRoot };
