"""Benchmarks of the CSR paper, read from their official releases and scored with their official metrics.

- ``registry``: what a benchmark is (data files, prompt template, answer parsing, scorer) and how to
  find one by name; each benchmark is one module in ``benchmarks/``.
- ``scorers/``: the metrics, each a re-implementation of the official scorer it names.
- ``score``: the stand-alone scoring command (``python -m csr_compute.evaluation.score``).
- ``run``: the ``evaluate`` compute step (generate answers with a checkpoint, then score them).

Nothing here imports torch or transformers at module level, so scoring runs on any machine.
"""
