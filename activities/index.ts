/** Activities of the CSR workers and the pieces they are built from. */
export * from './compute-process';
export * from './compute-step';
export * from './create-activities';
export * from './exit-codes';
export * from './fork-server';
export * from './manifest';
export * from './types';
