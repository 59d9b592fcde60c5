/**
 * docker-compose.yml, checked without a Docker engine: against the Compose Specification's JSON
 * schema, and for what the schema cannot see (one distinct GPU per GPU worker, documented variables,
 * references between services). Each check is also shown to fail on a broken copy.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import test from 'ava';
import YAML from 'yaml';

const root = path.resolve(__dirname, '..');
const composeText = fs.readFileSync(path.join(root, 'docker-compose.yml'), 'utf8');

type Service = {
  image?: string;
  build?: { context?: string; dockerfile?: string };
  hostname?: string;
  command?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, unknown>;
  volumes?: string[];
  deploy?: {
    resources?: {
      reservations?: { devices?: Array<{ device_ids?: string[]; driver?: string; capabilities?: string[] }> };
    };
  };
};
type Compose = {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
  configs?: Record<string, unknown>;
};

/** Parse as Compose does: YAML merge keys (`<<: *worker`) resolved. */
function parse(text: string): Compose {
  return YAML.parse(text, { merge: true }) as Compose;
}

/** A copy of the file with `edit` applied to the parsed document. */
function edited(edit: (doc: Compose) => void): Compose {
  const doc = parse(composeText);
  edit(doc);
  return doc;
}

const validateSchema = (() => {
  const raw = JSON.parse(fs.readFileSync(path.join(__dirname, 'fixtures', 'compose-spec.schema.json'), 'utf8'));
  // The file names draft-07 by an https URL Ajv does not know; draft-07 is Ajv's default anyway.
  delete raw.$schema;
  const ajv = new Ajv({ allErrors: true, strict: false });
  addFormats(ajv);
  return ajv.compile(raw);
})();

function schemaProblems(doc: unknown): string[] {
  if (validateSchema(doc)) return [];
  return (validateSchema.errors ?? []).map(
    (e) => `${e.instancePath || '/'} ${e.message}${e.params ? ` ${JSON.stringify(e.params)}` : ''}`,
  );
}

const workers = (doc: Compose) =>
  Object.entries(doc.services).filter(([, s]) => s.environment?.CSR_WORKER_KIND !== undefined);
const gpuWorkers = (doc: Compose) => workers(doc).filter(([, s]) => s.environment?.CSR_WORKER_KIND === 'gpu');

/** One GPU per GPU worker, no GPU twice, and the worker's command and env agree with each other. */
function gpuProblems(doc: Compose): string[] {
  const problems: string[] = [];
  const owner = new Map<string, string>();
  const hostnames = new Map<string, string>();
  const gpus = gpuWorkers(doc);
  if (gpus.length < 2) problems.push(`expected at least two example GPU workers, found ${gpus.length}`);
  for (const [name, service] of gpus) {
    const devices = service.deploy?.resources?.reservations?.devices ?? [];
    const ids = devices.flatMap((d) => d.device_ids ?? []);
    if (devices.length !== 1 || ids.length !== 1) {
      problems.push(`${name}: expected exactly one reserved device with one device id, got ${JSON.stringify(devices)}`);
    }
    for (const device of devices) {
      if (device.driver !== 'nvidia' || !device.capabilities?.includes('gpu')) {
        problems.push(
          `${name}: a GPU reservation needs driver nvidia and capability gpu, got ${JSON.stringify(device)}`,
        );
      }
    }
    for (const id of ids) {
      const other = owner.get(id);
      if (other) problems.push(`${name}: GPU device ${id} is already reserved by ${other}`);
      owner.set(id, name);
    }
    const command = service.command ?? [];
    const gpusArg = command[command.indexOf('--gpus') + 1];
    if (command.slice(0, 3).join(' ') !== 'npx csr worker' || !command.includes('--gpus')) {
      problems.push(`${name}: expected the command npx csr worker --gpus <ids>, got ${JSON.stringify(command)}`);
    } else if (gpusArg !== service.environment?.CSR_GPU_IDS) {
      problems.push(`${name}: --gpus ${gpusArg} disagrees with CSR_GPU_IDS=${service.environment?.CSR_GPU_IDS}`);
    }
    // Leases and worker identities are per host name; two GPU workers with one name would share them.
    const host = service.hostname ?? '';
    if (!host || hostnames.has(host))
      problems.push(`${name}: needs a hostname of its own, got ${JSON.stringify(host)}`);
    hostnames.set(host, name);
  }
  return problems;
}

/** Names listed under a header section of the file, e.g. "Variables read from the shell ...". */
function documented(text: string, section: RegExp): Set<string> {
  const lines = text.split('\n');
  const start = lines.findIndex((line) => section.test(line));
  const names = new Set<string>();
  for (const line of lines.slice(start + 1)) {
    const match = /^#\s{3}([A-Z][A-Z0-9_]*)\s{2,}\S/.exec(line);
    if (!match) break;
    names.add(match[1]!);
  }
  return names;
}

const shellVariables = () => documented(composeText, /^# Variables read from the shell/);
const workerVariables = () => documented(composeText, /^# Environment of the CSR worker containers/);

/** Every `${VAR}` / `$VAR` Compose interpolates ($$ is an escape for the container's shell) is documented, and vice versa. */
function interpolationProblems(text: string, known: Set<string>): string[] {
  const used = new Set<string>();
  for (const match of text.matchAll(/(?<!\$)\$(?:\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))/g)) {
    used.add((match[1] ?? match[2])!);
  }
  return [
    ...[...used]
      .filter((name) => !known.has(name))
      .map((name) => `\${${name}} is used but not documented in the header`),
    ...[...known].filter((name) => !used.has(name)).map((name) => `${name} is documented but never used`),
  ];
}

/** Worker environment keys are documented; services, volumes and Dockerfiles that are referenced exist. */
function referenceProblems(doc: Compose): string[] {
  const problems: string[] = [];
  const workerEnv = workerVariables();
  for (const [name, service] of workers(doc)) {
    for (const key of Object.keys(service.environment ?? {})) {
      if (!workerEnv.has(key)) problems.push(`${name}: environment ${key} is not documented in the header`);
    }
  }
  for (const [name, service] of Object.entries(doc.services)) {
    for (const dependency of Object.keys(service.depends_on ?? {})) {
      if (!doc.services[dependency]) problems.push(`${name}: depends on ${dependency}, which is not a service`);
    }
    for (const volume of service.volumes ?? []) {
      const source = volume.split(':')[0]!;
      if (!source.startsWith('.') && !source.startsWith('/') && !(source in (doc.volumes ?? {}))) {
        problems.push(`${name}: volume ${source} is not declared under volumes`);
      }
    }
    if (service.build) {
      const dockerfile = path.join(root, service.build.context ?? '.', service.build.dockerfile ?? 'Dockerfile');
      if (!fs.existsSync(dockerfile)) problems.push(`${name}: ${path.relative(root, dockerfile)} does not exist`);
    }
  }
  return problems;
}

test('docker-compose.yml is valid against the Compose Specification schema', (t) => {
  t.deepEqual(schemaProblems(parse(composeText)), []);
});

test('a copy with a misspelt key or a wrongly typed device list fails the schema', (t) => {
  const typo = schemaProblems(
    edited((doc) => {
      const mlflow = doc.services.mlflow as Record<string, unknown>;
      mlflow.enviroment = mlflow.environment;
      delete mlflow.environment;
    }),
  );
  t.true(
    typo.some((p) => p.includes('/services/mlflow') && p.includes('enviroment')),
    typo.join('\n'),
  );

  const devices = schemaProblems(
    edited((doc) => {
      (
        doc.services['gpu-worker-0']!.deploy!.resources!.reservations!.devices![0] as Record<string, unknown>
      ).device_ids = '0';
    }),
  );
  t.true(
    devices.some((p) => p.includes('device_ids')),
    devices.join('\n'),
  );
});

test('each GPU worker reserves exactly one GPU, no GPU is reserved twice', (t) => {
  t.deepEqual(gpuProblems(parse(composeText)), []);
  t.deepEqual(
    gpuWorkers(parse(composeText)).map(([name, s]) => [
      name,
      s.deploy?.resources?.reservations?.devices?.[0]?.device_ids,
    ]),
    [
      ['gpu-worker-0', ['0']],
      ['gpu-worker-1', ['1']],
    ],
  );

  const shared = gpuProblems(
    edited((doc) => {
      doc.services['gpu-worker-1']!.deploy!.resources!.reservations!.devices![0]!.device_ids = ['0'];
    }),
  );
  t.deepEqual(shared, ['gpu-worker-1: GPU device 0 is already reserved by gpu-worker-0']);

  const two = gpuProblems(
    edited((doc) => {
      doc.services['gpu-worker-0']!.deploy!.resources!.reservations!.devices![0]!.device_ids = ['0', '2'];
    }),
  );
  t.true(
    two.some((p) => p.startsWith('gpu-worker-0: expected exactly one reserved device')),
    two.join('\n'),
  );
});

test('every variable the file interpolates is documented in its header', (t) => {
  t.deepEqual(interpolationProblems(composeText, shellVariables()), []);
  t.true(shellVariables().has('TEMPORAL_VERSION'));
  const broken = composeText.replace('POSTGRES_USER: mlflow', 'POSTGRES_USER: ${MLFLOW_DB_USER}');
  t.deepEqual(interpolationProblems(broken, shellVariables()), [
    '${MLFLOW_DB_USER} is used but not documented in the header',
  ]);
});

test('worker env is documented and every referenced service, volume and Dockerfile exists', (t) => {
  t.deepEqual(referenceProblems(parse(composeText)), []);
  const broken = referenceProblems(
    edited((doc) => {
      doc.services['cpu-worker']!.environment!.CSR_SECRET_FLAG = '1';
      doc.services['cpu-worker']!.depends_on = { temporl: {} };
      doc.services['cpu-worker']!.volumes = ['csr-hom:/csr'];
    }),
  );
  t.deepEqual(broken, [
    'cpu-worker: environment CSR_SECRET_FLAG is not documented in the header',
    'cpu-worker: depends on temporl, which is not a service',
    'cpu-worker: volume csr-hom is not declared under volumes',
  ]);
});

test('workers reach Temporal and MLflow through the services the file defines, and share CSR_HOME', (t) => {
  const doc = parse(composeText);
  const mlflowCommand = doc.services.mlflow!.command ?? [];
  t.is(mlflowCommand[mlflowCommand.indexOf('--port') + 1], '5000');
  t.true(mlflowCommand.includes('--serve-artifacts'));
  t.truthy(doc.services.temporal && doc.services['temporal-ui']);
  const cpu = doc.services['cpu-worker']!;
  t.deepEqual(cpu.command, ['npx', 'csr', 'worker', '--cpu']);
  t.is(cpu.environment?.CSR_WORKER_KIND, 'cpu');
  t.is(cpu.deploy, undefined, 'the CPU worker reserves no GPU');
  for (const [name, service] of workers(doc)) {
    t.is(service.environment?.TEMPORAL_ADDRESS, 'temporal:7233', name);
    t.is(service.environment?.MLFLOW_TRACKING_URI, 'http://mlflow:5000', name);
    t.is(service.environment?.CSR_HOME, '/csr', name);
    t.true(service.volumes?.includes('csr-home:/csr'), `${name} mounts the shared CSR_HOME volume`);
    t.is(service.image, cpu.image, `${name} runs the worker image`);
  }
});

/**
 * The file as Compose sees it with nothing set in the environment: `${VAR:-default}` gives the default,
 * `${VAR:?message}` is required (left as a marker), `${VAR}` is empty.
 */
function interpolateUnset(text: string): string {
  return text.replace(/(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*)|(:?\?)([^}]*))?\}/g, (_m, name: string, _d, fallback?: string, req?: string) =>
    req ? `<required ${name}>` : (fallback ?? ''),
  );
}

/** Published ports whose host address is not 127.0.0.1 when no variable is set. */
function openPorts(text: string): string[] {
  const doc = parse(interpolateUnset(text)) as { services: Record<string, { ports?: (string | { host_ip?: string; published?: unknown })[] }> };
  const problems: string[] = [];
  for (const [name, service] of Object.entries(doc.services)) {
    for (const port of service.ports ?? []) {
      const host = typeof port === 'string' ? (port.split(':').length === 3 ? port.split(':')[0] : '') : (port.host_ip ?? '');
      if (host !== '127.0.0.1') problems.push(`${name}: port ${JSON.stringify(port)} is published on ${host || 'every interface'}`);
    }
  }
  return problems;
}

/** Secrets with a default value (anyone who reads the file knows them) instead of a required variable. */
function defaultSecrets(text: string): string[] {
  const problems: string[] = [];
  for (const match of text.matchAll(/^\s*([A-Z_]*(?:PASSWORD|PASSWD|PWD|SECRET|TOKEN)[A-Z_]*):\s*(.+)$/gm)) {
    const [, key, value] = match as unknown as [string, string, string];
    if (!/^\$\{[A-Z_]+:\?[^}]+\}$/.test(value.trim())) problems.push(`${key}: ${value.trim()} is not a required variable`);
  }
  for (const match of text.matchAll(/:\/\/[^:/\s]+:([^@\s]+)@/g)) {
    if (!/^\$\{[A-Z_]+:\?[^}]+\}$/.test(match[1]!)) problems.push(`a URI carries the password ${match[1]}`);
  }
  return problems;
}

test('closed by default: every port on 127.0.0.1 unless CSR_PUBLISH_ADDRESS says otherwise', (t) => {
  t.deepEqual(openPorts(composeText), []);
  t.true(shellVariables().has('CSR_PUBLISH_ADDRESS'));
  const open = openPorts(composeText.replace("'${CSR_PUBLISH_ADDRESS:-127.0.0.1}:${CSR_MLFLOW_PORT:-5000}:5000'", "'${CSR_MLFLOW_PORT:-5000}:5000'"));
  t.deepEqual(open, ['mlflow: port "5000:5000" is published on every interface']);
});

test('no default password: every secret is a required variable, and MLflow asks for basic auth', (t) => {
  t.deepEqual(defaultSecrets(composeText), []);
  t.true(composeText.includes('${TEMPORAL_DB_PASSWORD:?'));
  t.deepEqual(defaultSecrets(composeText.replace(/\$\{MLFLOW_DB_PASSWORD:\?[^}]+\}/g, '${MLFLOW_DB_PASSWORD:-mlflow}')), [
    'POSTGRES_PASSWORD: ${MLFLOW_DB_PASSWORD:-mlflow} is not a required variable',
    'a URI carries the password ${MLFLOW_DB_PASSWORD:-mlflow}',
  ]);
  const doc = parse(composeText);
  const mlflow = doc.services.mlflow!;
  t.deepEqual(mlflow.command?.slice(0, 4), ['mlflow', 'server', '--app-name', 'basic-auth']);
  t.regex(mlflow.environment?.MLFLOW_AUTH_ADMIN_PASSWORD ?? '', /^\$\{MLFLOW_TRACKING_PASSWORD:\?/);
  for (const [name, service] of workers(doc)) {
    t.regex(service.environment?.MLFLOW_TRACKING_PASSWORD ?? '', /^\$\{MLFLOW_TRACKING_PASSWORD:\?/, `${name} logs in to MLflow`);
  }
  t.true(fs.readFileSync(path.join(root, '.gitignore'), 'utf8').split('\n').includes('.env'), '.env (the passwords) stays out of git');
});
