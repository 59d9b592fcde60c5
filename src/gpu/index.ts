/** GPU bookkeeping of one host: leases, and killing the process groups that hold GPUs. */
export * from './leases';
export * from './process-groups';
export * from './process-identity';
