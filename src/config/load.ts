/**
 * Reading and validating a config file, once, at the boundary: every bad field is reported in one
 * message, one line per field, `path: expected ... (got value)`, before anything starts. Validation
 * itself lives in `parse.ts`, which workflow code imports too.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import type { CsrConfig } from './schema';
import { JUDGE_KEY_ENVS, judgeKeyProblem } from './judge-key';
import { ConfigError, parseConfig, show } from './parse';

export { ConfigError, describeIssues, parseConfig } from './parse';

/** A config file that is not there: exit 3 (a missing input), not 2. */
export class MissingConfigError extends ConfigError {
  constructor(file: string, problem: string) {
    super(file, [problem]);
    this.name = 'MissingConfigError';
  }
}

/**
 * The file's text, or a ConfigError that says where it stops being UTF-8 text. Binary or Latin-1
 * bytes are named by offset and hex value, never echoed: they could be terminal control sequences.
 */
function readText(file: string): string {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new MissingConfigError(file, 'no such file');
    throw new ConfigError(file, [`cannot read the file (${code ?? (error as Error).message})`]);
  }
  const nul = bytes.indexOf(0);
  if (nul >= 0) throw new ConfigError(file, [`expected a YAML text file, got binary data (a NUL byte at offset ${nul})`]);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    const offset = firstInvalidUtf8(bytes);
    const line = bytes.subarray(0, offset).toString('latin1').split('\n').length;
    const hex = bytes[offset]?.toString(16).padStart(2, '0') ?? '??';
    throw new ConfigError(file, [`expected UTF-8 text, got byte 0x${hex} at line ${line} (offset ${offset}); save the file as UTF-8`]);
  }
}

/** Offset of the first byte that does not start a valid UTF-8 sequence. */
function firstInvalidUtf8(bytes: Buffer): number {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  for (let i = 0; i < bytes.length; ) {
    const lead = bytes[i] as number;
    const length = lead < 0x80 ? 1 : lead >= 0xc2 && lead < 0xe0 ? 2 : lead >= 0xe0 && lead < 0xf0 ? 3 : lead >= 0xf0 && lead < 0xf5 ? 4 : 0;
    if (length === 0) return i;
    try {
      decoder.decode(bytes.subarray(i, i + length));
    } catch {
      return i;
    }
    i += length;
  }
  return bytes.length;
}

/**
 * Relative paths in a config mean relative to the config file's folder, wherever the CLI or the
 * worker runs: they are made absolute here, once, before the config is hashed or sent anywhere.
 */
export function resolveConfigPaths(config: CsrConfig, folder: string): CsrConfig {
  const absolute = (value: string | undefined) => (value === undefined ? undefined : path.resolve(folder, value));
  const source = (model: CsrConfig['model']) => (model.source === 'path' ? { ...model, path: path.resolve(folder, model.path) } : model);
  const prompts = { ...config.prompts };
  if (prompts.file !== undefined) prompts.file = absolute(prompts.file);
  if (prompts.images_dir !== undefined) prompts.images_dir = absolute(prompts.images_dir);
  const benchmarks = config.evaluate.benchmarks.map((benchmark) => {
    const resolved = { ...benchmark };
    if (resolved.data_dir !== undefined) resolved.data_dir = absolute(resolved.data_dir);
    if (resolved.image_dir !== undefined) resolved.image_dir = absolute(resolved.image_dir);
    return resolved;
  });
  return { ...config, model: source(config.model), clip: source(config.clip), prompts, evaluate: { ...config.evaluate, benchmarks } };
}

/**
 * Read, parse and validate a YAML config file; its relative paths are resolved against its folder,
 * and a judge key variable must be in this environment's allowlist (`CSR_JUDGE_KEY_ENVS`).
 */
export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): CsrConfig {
  const text = readText(file);
  let input: unknown;
  try {
    input = parseYaml(text);
  } catch (error) {
    const where = error instanceof YAMLParseError && error.linePos ? ` at line ${error.linePos[0].line}` : '';
    // The parser's message quotes the source line; only its first line (what is wrong) is kept.
    throw new ConfigError(file, [`not valid YAML${where}: ${show((error as Error).message.split('\n')[0]).slice(1, -1)}`]);
  }
  const config = resolveConfigPaths(parseConfig(input, file), path.dirname(path.resolve(file)));
  const judgeProblem = judgeKeyProblem(config, env[JUDGE_KEY_ENVS]);
  if (judgeProblem) throw new ConfigError(file, [judgeProblem]);
  return config;
}
