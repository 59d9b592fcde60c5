/**
 * MLflow bookkeeping of a CSR run: an experiment per config name, a parent run per CSR run, a child
 * run per iteration. Every run is named by an idempotency key and every write goes through the
 * resilient tracker, so a retried activity never makes a second run and an MLflow outage never
 * fails a step (writes are spooled and delivered later, with a loud warning).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { CsrConfig } from '../src/config/schema';
import type { CsrEnv } from '../src/env';
import { MlflowClient, ResilientTracker, type RunSpec, type RunTarget } from '../src/mlflow';
import { isHeadlineMetric, METRIC_PRIORITY, metricDirection } from '../src/shared/headline-metrics';
import { runDescription } from '../src/shared/run-description';
import type { IterationEndTracking, IterationTracking, RunTrackingStart, TrackingRefs } from '../src/shared/run-types';
import { runComputeProcess } from './compute-process';
import { dpoCurvePoints } from './dpo-curves';
import type { ForkServer } from './fork-server';
import { specText } from './manifest';

/** How long the plot step may take before it is killed (it draws a few small panels: about a second). */
const PLOT_TIMEOUT_MS = 120_000;

/** `{a: {b: 1}}` -> `{'a.b': '1'}`: MLflow params are flat strings. */
export function flattenParams(value: unknown, prefix = ''): Record<string, string> {
  const out: Record<string, string> = {};
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [key, inner] of Object.entries(value)) Object.assign(out, flattenParams(inner, prefix ? `${prefix}.${key}` : key));
  } else if (prefix) {
    out[prefix] = typeof value === 'string' ? value : JSON.stringify(value ?? null);
  }
  return out;
}

/** The MLflow run of a sweep, which the runs of its cells are nested under. */
export function sweepRunSpec(experimentName: string, sweepKey: string): RunSpec {
  return { experimentName, idempotencyKey: sweepKey, name: sweepKey, tags: { 'csr.sweep_key': sweepKey, 'csr.kind': 'sweep' } };
}

function parentSpec(refs: TrackingRefs): RunSpec {
  const sweep = refs.sweep;
  return {
    experimentName: refs.experimentName,
    idempotencyKey: refs.parentKey,
    name: refs.parentKey,
    // Nested under the sweep's run when the run is a sweep's cell; a spec (not an id) when MLflow was down at the start.
    ...(sweep ? { parent: sweep.parentRunId ?? sweepRunSpec(refs.experimentName, sweep.key) } : {}),
  };
}

function iterationSpec(refs: TrackingRefs, iteration: number): RunSpec {
  return {
    experimentName: refs.experimentName,
    idempotencyKey: `${refs.parentKey}/iter-${iteration}`,
    name: `iteration ${iteration}`,
    parent: refs.parentRunId ?? parentSpec(refs),
    tags: { 'csr.iteration': String(iteration), 'csr.run_key': refs.parentKey },
  };
}

/**
 * The per-iteration trends of the parent run (step = iteration): what curation kept and what DPO
 * reached, as `<trend>` <- `<iteration stat>`. The rest of the statistics go to the iteration's run as
 * one JSON artifact, not as charts of one point each.
 */
export const PARENT_TRENDS: Record<string, string> = {
  'curate/pairs': 'curate/pairs',
  'curate/mean_gap': 'curate/gap_mean',
  'dpo/final_loss': 'dpo/last_loss',
  'dpo/reward_margin': 'dpo/last_margin',
  'dpo/reward_accuracy': 'dpo/last_accuracy',
};

/** The parent run's trend points of one iteration (only the statistics the iteration has). */
export function parentTrendPoints(stats: Record<string, number>, step: number, timestamp: number) {
  return Object.entries(PARENT_TRENDS)
    .filter(([, stat]) => typeof stats[stat] === 'number' && Number.isFinite(stats[stat]))
    .map(([key, stat]) => ({ key, value: stats[stat]!, step, timestamp }));
}

/** One panel of the headline plot: a metric by iteration, with its title and direction. */
export interface PlotPanel {
  key: string;
  title: string;
  direction: 'minimize' | 'maximize';
  objective: boolean;
  points: [number, number][];
}

/** At most this many panels: the objective and the headline metrics that change. */
const MAX_PANELS = 6;

/**
 * The panels of the headline plot from the parent run's eval/* histories: the objective first, then
 * headline metrics (no counts, no per-split breakdowns, no constant lines) in order of importance.
 */
export function plotPanels(history: Record<string, [number, number][]>, objective?: string, direction?: 'minimize' | 'maximize'): PlotPanel[] {
  const name = (key: string) => key.slice('eval/'.length);
  const rank = (key: string) => {
    const metric = name(key).split('/').slice(1).join('/');
    const p = METRIC_PRIORITY.indexOf(metric);
    return p < 0 ? METRIC_PRIORITY.length : p;
  };
  const varies = (points: [number, number][]) => new Set(points.map(([, v]) => v)).size > 1;
  const headline = Object.keys(history)
    .filter((key) => name(key) !== objective && isHeadlineMetric(name(key)))
    .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  const first = objective && history[`eval/${objective}`] ? [`eval/${objective}`] : [];
  const changing = headline.filter((key) => varies(history[key]!));
  // Constant lines only when nothing else would be drawn (iteration 0 alone, or a run that changed nothing).
  const keys = [...first, ...(first.length + changing.length > 0 ? changing : headline)].slice(0, MAX_PANELS);
  return keys.map((key) => {
    const isObjective = name(key) === objective;
    return {
      key,
      title: name(key),
      direction: isObjective && direction ? direction : metricDirection(name(key)),
      objective: isObjective,
      points: [...history[key]!].sort((a, b) => a[0] - b[0]),
    };
  });
}

/**
 * The tracking activities. `forkServer`: the worker's warm compute process, which forks the plot step (else it is
 * spawned as `python -m csr_compute plot`, like any step whose server is down).
 */
export function createTrackingActivities(env: CsrEnv, tracker?: ResilientTracker, forkServer?: ForkServer) {
  const client = new MlflowClient({ trackingUri: env.mlflowUri });
  const resilient = tracker ?? new ResilientTracker({ client, spoolDir: path.join(env.home, 'spool', 'mlflow') });
  // The plot's reads: short, since a plot is only refreshed when nothing waits, and it may be skipped.
  const plotReads = client.withOptions({ timeoutMs: 10_000, retry: { attempts: 2, initialDelayMs: 200, maxDelayMs: 1000 } });

  /**
   * Refresh `plots/eval_metrics.png` from the parent run's own history: the objective and the headline
   * metrics against iteration, each titled with its direction. The objective comes from the run's params.
   */
  async function refreshPlot(parentRunId: string): Promise<void> {
    // While writes wait for MLflow its history is behind (the next iteration's refresh draws it whole), and a
    // hung server would hold each read for its full timeout: no plot now.
    if (resilient.pending > 0) throw new Error(`${resilient.pending} MLflow write(s) still waiting for the server`);
    const run = await plotReads.getRun(parentRunId);
    const params = run.data.params ?? {};
    const objective = params['evaluate.objective'];
    const direction = params['evaluate.objective_direction'] === 'maximize' ? 'maximize' : 'minimize';
    // Only the histories a panel can show (the objective, headline metrics), fetched side by side.
    const keys = Object.keys(run.data.metrics ?? {}).filter(
      (k) => k.startsWith('eval/') && (k.slice('eval/'.length) === objective || isHeadlineMetric(k.slice('eval/'.length))),
    );
    if (keys.length === 0) return;
    const histories = await Promise.all(keys.map((key) => plotReads.getMetricHistory(parentRunId, key)));
    const history = Object.fromEntries(
      keys.map((key, i) => [key, histories[i]!.map((m): [number, number] => [m.step, m.value as number])]),
    );
    const panels = plotPanels(history, objective, direction);
    if (panels.length === 0) return;
    // Drawn by the compute package's `plot` step, through the worker's warm process (a fork, not an interpreter
    // that imports matplotlib): the one way this side starts Python.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'csr-plot-'));
    try {
      const specFile = path.join(dir, 'spec.json');
      fs.writeFileSync(specFile, specText({ out_dir: dir, title: run.info.runName ?? '', panels }));
      const drawn = await runComputeProcess({
        python: env.python,
        step: 'plot',
        specFile,
        logFile: path.join(dir, 'plot.log'),
        // The CPU worker's steps' environment (its fork server's, so the request is served).
        env: { ...process.env, CUDA_VISIBLE_DEVICES: '', PYTHONUNBUFFERED: '1' },
        signal: AbortSignal.timeout(PLOT_TIMEOUT_MS),
        forkServer,
      });
      if (drawn.code !== 0) {
        throw new Error(`plot step ended with ${drawn.signal ?? `code ${drawn.code}`}: ${drawn.errorMessage ?? drawn.stderrTail?.trim()}`);
      }
      await resilient.logArtifact(parentRunId, path.join(dir, 'eval_metrics.png'), 'plots/eval_metrics.png');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  /** The DPO step's curves (its metrics.jsonl) on the iteration's run. */
  async function logCurves(child: RunTarget, dpoDir: string): Promise<void> {
    const curves = dpoCurvePoints(dpoDir);
    if (curves.length > 0) await resilient.logBatch(child, { metrics: curves });
  }

  return {
    /** Find or create the experiment and the parent run; log the flattened config as params. */
    async trackRunStart(input: RunTrackingStart): Promise<TrackingRefs> {
      const refs: TrackingRefs = { experimentName: input.config.name, parentKey: input.runKey, ...(input.sweep ? { sweep: input.sweep } : {}) };
      const spec: RunSpec = {
        ...parentSpec(refs),
        tags: {
          'mlflow.note.content': runDescription(input.config, input.runKey),
          'csr.run_key': input.runKey,
          'csr.workflow_id': input.workflowId,
          'csr.config_hash': input.configHash,
          'mlflow.source.git.commit': input.codeVersion ?? 'unknown',
          'csr.git_commit': input.codeVersion ?? 'unknown',
          ...(input.resumedFrom ? { 'csr.resumed_from': input.resumedFrom } : {}),
          ...(input.sweep ? { 'csr.sweep_key': input.sweep.key } : {}),
        },
      };
      refs.parentRunId = await resilient.ensureRun(spec);
      await resilient.logBatch(refs.parentRunId ?? spec, {
        params: { ...flattenParams(input.config), config_hash: input.configHash },
        tags: { 'csr.workflow_id': input.workflowId },
      });
      return refs;
    },

    /** Find or create the iteration's child run (trackIterationEnd writes to it). */
    async trackIterationStart(input: { tracking: TrackingRefs; runKey: string; iteration: number; workflowId: string }): Promise<IterationTracking> {
      const spec = iterationSpec(input.tracking, input.iteration);
      spec.tags = { ...spec.tags, 'csr.workflow_id': input.workflowId };
      const runId = await resilient.ensureRun(spec);
      return { key: spec.idempotencyKey, runId };
    },

    /**
     * Log an iteration: on the parent run at step = iteration, eval/<benchmark>/<metric> and the
     * curate/DPO trends; on the iteration's run, the DPO curves, its statistics and evaluation metrics as
     * one JSON artifact (one-point charts help nobody), a sample of preference pairs and the evaluation
     * reports; and the refreshed headline plot.
     */
    async trackIterationEnd(input: IterationEndTracking): Promise<void> {
      const parent = input.tracking.parentRunId ?? parentSpec(input.tracking);
      const child = input.iterationRunId ?? iterationSpec(input.tracking, input.iteration);
      const step = input.iteration;
      const timestamp = input.timestamp;
      // The iteration's own run and the parent's metrics + headline plot go side by side (each in its own order):
      // the plot reads only the parent's history.
      const iterationRun = (async () => {
        await resilient.logBatch(child, { params: { iteration: input.iteration, artifact_root: input.artifactRoot } });
        const statsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'csr-stats-'));
        try {
          const file = path.join(statsDir, 'iteration_stats.json');
          const eval_ = Object.fromEntries(Object.entries(input.metrics).map(([key, value]) => [`eval/${key}`, value]));
          fs.writeFileSync(file, `${JSON.stringify({ iteration: input.iteration, ...input.stats, ...eval_ }, null, 2)}\n`);
          await resilient.logArtifact(child, file, 'iteration_stats.json');
        } finally {
          fs.rmSync(statsDir, { recursive: true, force: true });
        }
        if (input.dpoDir) await logCurves(child, input.dpoDir);
        if (input.curateDir) {
          // The curate step cut the sample (`curate.sample_size` pairs) and listed it in its manifest.
          const sample = path.join(input.curateDir, 'pairs_sample.jsonl');
          if (fs.existsSync(sample)) await resilient.logArtifact(child, sample, 'preference_pairs_sample.jsonl');
          const stats = path.join(input.curateDir, 'stats.json');
          if (fs.existsSync(stats)) await resilient.logArtifact(child, stats, 'curation_stats.json');
        }
        for (const dir of input.evaluateDirs) {
          const report = path.join(dir, 'metrics.json');
          if (fs.existsSync(report)) await resilient.logArtifact(child, report, `evaluation/${path.basename(dir)}.json`);
        }
        await resilient.setTerminated(child, 'FINISHED');
      })();
      void iterationRun.catch(() => undefined); // awaited below, after the plot
      const parentRunId = input.tracking.parentRunId;
      const plotted = (async () => {
        await resilient.logBatch(parent, {
          metrics: [
            ...Object.entries(input.metrics).map(([key, value]) => ({ key: `eval/${key}`, value, step, timestamp })),
            ...parentTrendPoints(input.stats, step, timestamp),
          ],
        });
        if (!parentRunId) return;
        try {
          await refreshPlot(parentRunId);
        } catch (error) {
          console.warn(`[mlflow] eval plot not refreshed: ${(error as Error).message}`);
        }
      })();
      try {
        await iterationRun;
      } finally {
        await plotted; // never left running after the activity, even when the iteration's run failed
      }
      await resilient.flush();
    },

    /**
     * Log the DPO step's curves on the iteration's run as soon as the step has finished (patch 'dpo-curves-lane':
     * the iteration's trackIterationEnd then gets no dpoDir), so that they are in MLflow while merge and
     * evaluate run rather than written after them: thousands of points take seconds.
     */
    async trackDpoCurves(input: { tracking: TrackingRefs; iterationRunId?: string; iteration: number; dpoDir: string }): Promise<void> {
      await logCurves(input.iterationRunId ?? iterationSpec(input.tracking, input.iteration), input.dpoDir);
    },

    /** Mark the parent run finished (or failed) when the run ends. */
    async trackRunEnd(input: { tracking: TrackingRefs; status: 'FINISHED' | 'FAILED' | 'KILLED' }): Promise<void> {
      await resilient.setTerminated(input.tracking.parentRunId ?? parentSpec(input.tracking), input.status);
      await resilient.flush();
    },
  };
}
