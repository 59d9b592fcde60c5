'use strict';
/**
 * What the bootstrap shows of a pip install: one line (how many packages it installed) unless pip
 * failed or CSR_VERBOSE=1, when every line but the "already satisfied" ones is kept. Plain JavaScript
 * with no dependencies, like the bootstrap that requires it.
 */

/** Lines that never help: what was already there, where pip looked. */
const NOISE = /^(Requirement already satisfied|WARNING: Location|Looking in)/;

/**
 * @param {string} stdout pip's standard output
 * @param {string} stderr pip's standard error
 * @param {number | null} status pip's exit status
 * @param {boolean} verbose keep every useful line
 * @returns {string[]} the lines to print
 */
function foldPipOutput(stdout, stderr, status, verbose) {
  const kept = [stdout, stderr].flatMap((text) => (text || '').split(/\r?\n/)).filter((l) => l.trim() && !NOISE.test(l));
  if (verbose || status !== 0) return kept;
  const installed = kept.find((l) => l.startsWith('Successfully installed '));
  const count = installed ? installed.slice('Successfully installed '.length).trim().split(/\s+/).length : 0;
  return [count ? `pip installed ${count} packages (CSR_VERBOSE=1 npm run bootstrap -- --force lists them)` : 'pip: nothing to install'];
}

module.exports = { foldPipOutput };
