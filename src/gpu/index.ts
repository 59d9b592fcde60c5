/** GPU bookkeeping of one host. */
export * from './leases';
