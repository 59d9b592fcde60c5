/** Workers of one machine: the CPU worker, GPU-pinned workers, CPU stand-ins and the multi-GPU host worker. */
export * from './health-probe';
export * from './start-workers';
export * from './worker-options';
