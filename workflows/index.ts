/** The workflows the CPU worker registers. Only workflow code here: no Node built-ins, no activities. */
export { csrRun } from './csr-run';
export { csrIteration } from './csr-iteration';
export { csrSweep } from './csr-sweep';
