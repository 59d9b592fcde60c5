/**
 * MLflow bookkeeping of a sweep: one run for the whole sweep (the cells' runs nest under it), and at
 * the end its table as artifacts: `sweep/table.csv`, `sweep/table.json` (what `csr sweep --json`
 * prints) and `sweep/table.png`. The files are also kept under `$CSR_HOME/artifacts/<sweep key>/sweep/`.
 * Like the run's tracking, every write goes through the resilient tracker: MLflow being down never
 * fails a sweep.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { CsrEnv } from '../src/env';
import { MlflowClient, ResilientTracker } from '../src/mlflow';
import { sweepCsv } from '../src/shared/sweep-csv';
import type { GridValue, SweepTable } from '../src/shared/sweep-types';
import { sweepRunSpec } from './tracking';

const execFileAsync = promisify(execFile);

/** Metrics drawn in the PNG: the objective first, then `<benchmark>/<metric>` headlines (no per-split breakdowns), at most 12. */
export function plottedMetrics(table: SweepTable, objective?: string): string[] {
  const names = [...new Set(table.cells.flatMap((cell) => Object.keys(cell.metrics)))].sort();
  const headline = names.filter((name) => name.split('/').length === 2 && name !== objective);
  return [...(objective && names.includes(objective) ? [objective] : []), ...headline].slice(0, 12);
}

export function createSweepTrackingActivities(env: CsrEnv, tracker?: ResilientTracker) {
  const resilient =
    tracker ?? new ResilientTracker({ client: new MlflowClient({ trackingUri: env.mlflowUri }), spoolDir: path.join(env.home, 'spool', 'mlflow') });

  return {
    /** Find or create the sweep's run; its id goes to every cell's run as `mlflow.parentRunId`. */
    async trackSweepStart(input: {
      experimentName: string;
      sweepKey: string;
      workflowId: string;
      grid: { key: string; values: GridValue[] }[];
      seeds: number[];
      configFile?: string;
      codeVersion?: string;
      resumedFrom?: string;
    }): Promise<{ parentRunId?: string }> {
      const spec = sweepRunSpec(input.experimentName, input.sweepKey);
      spec.tags = {
        ...spec.tags,
        'csr.workflow_id': input.workflowId,
        'mlflow.source.git.commit': input.codeVersion ?? 'unknown',
        'csr.git_commit': input.codeVersion ?? 'unknown',
        ...(input.resumedFrom ? { 'csr.resumed_from': input.resumedFrom } : {}),
      };
      const parentRunId = await resilient.ensureRun(spec);
      await resilient.logBatch(parentRunId ?? spec, {
        params: {
          ...Object.fromEntries(input.grid.map((axis) => [`grid.${axis.key}`, JSON.stringify(axis.values)])),
          seeds: JSON.stringify(input.seeds),
          ...(input.configFile ? { config_file: input.configFile } : {}),
        },
        // A resumed sweep keeps its run; the tag says which workflow wrote last.
        tags: { 'csr.workflow_id': input.workflowId },
      });
      return parentRunId ? { parentRunId } : {};
    },

    /**
     * Write the table (CSV, JSON, PNG) next to the sweep's artifacts, log the files to the sweep's run,
     * tag the best cell, and close the run with `status`.
     */
    async trackSweepEnd(input: {
      experimentName: string;
      sweepKey: string;
      parentRunId?: string;
      status: 'FINISHED' | 'FAILED' | 'KILLED';
      table?: SweepTable;
      best?: number;
      objective?: string;
      direction?: 'minimize' | 'maximize';
    }): Promise<{ dir?: string }> {
      const run = input.parentRunId ?? sweepRunSpec(input.experimentName, input.sweepKey);
      let dir: string | undefined;
      if (input.table) {
        dir = path.join(env.artifactsDir, input.sweepKey, 'sweep');
        fs.mkdirSync(dir, { recursive: true });
        const csv = path.join(dir, 'table.csv');
        const json = path.join(dir, 'table.json');
        fs.writeFileSync(csv, sweepCsv(input.table, input.best, input.objective));
        fs.writeFileSync(json, `${JSON.stringify(input.table, null, 2)}\n`);
        await resilient.logArtifact(run, csv, 'sweep/table.csv');
        await resilient.logArtifact(run, json, 'sweep/table.json');
        const best = input.best === undefined ? undefined : input.table.cells[input.best];
        if (best) {
          await resilient.setTag(run, 'csr.best_cell', JSON.stringify(best.params));
          const summary = input.objective ? best.metrics[input.objective] : undefined;
          if (summary) {
            const { mean, sd } = summary;
            await resilient.logBatch(run, { metrics: [{ key: `best/${input.objective}/mean`, value: mean }, { key: `best/${input.objective}/sd`, value: sd }] });
          }
        }
        const png = path.join(dir, 'table.png');
        try {
          await execFileAsync(env.python, [
            '-m',
            'csr_compute.sweep_plot',
            '--input',
            json,
            '--output',
            png,
            '--metrics',
            plottedMetrics(input.table, input.objective).join(','),
            ...(input.best === undefined ? [] : ['--best', String(input.best)]),
          ]);
          await resilient.logArtifact(run, png, 'sweep/table.png');
        } catch (error) {
          // A figure is a convenience; the CSV and JSON hold the numbers.
          console.warn(`[mlflow] sweep plot not drawn: ${(error as Error).message.split('\n')[0]}`);
        }
      }
      await resilient.setTerminated(run, input.status);
      await resilient.flush();
      return dir ? { dir } : {};
    },
  };
}
