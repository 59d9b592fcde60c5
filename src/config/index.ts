export { ConfigError, describeIssues, loadConfig, parseConfig } from './load';
export { rawConfigSchema, type BenchmarkSpec, type CsrConfig, type ModelSource } from './schema';
export { durationMs } from './fields';
