export { ConfigError, MissingConfigError, describeIssues, loadConfig, parseConfig, resolveConfigPaths } from './load';
export { JUDGE_KEY_ENVS, judgeKeyProblem } from './judge-key';
export { rawConfigSchema, type BenchmarkSpec, type CsrConfig, type ModelSource } from './schema';
export { durationMs } from './fields';
