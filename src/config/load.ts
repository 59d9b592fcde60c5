/**
 * Reading and validating a config file, once, at the boundary: every bad field is reported in one
 * message, one line per field, `path: expected ... (got value)`, before anything starts. Validation
 * itself lives in `parse.ts`, which workflow code imports too.
 */
import * as fs from 'node:fs';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import type { CsrConfig } from './schema';
import { ConfigError, parseConfig } from './parse';

export { ConfigError, describeIssues, parseConfig } from './parse';

/** Read, parse and validate a YAML config file. */
export function loadConfig(file: string): CsrConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(file, [`cannot read the file: ${(error as Error).message}`]);
  }
  let input: unknown;
  try {
    input = parseYaml(text);
  } catch (error) {
    const where = error instanceof YAMLParseError && error.linePos ? ` at line ${error.linePos[0].line}` : '';
    throw new ConfigError(file, [`not valid YAML${where}: ${(error as Error).message.split('\n')[0]}`]);
  }
  return parseConfig(input, file);
}
