"""Compute steps of Calibrated Self-Rewarding (CSR): generate, reward, curate, DPO, merge, evaluate.

Each step is a command with a versioned JSON contract (see ``contract.py``) that the TypeScript
activities launch as a child process: ``python -m csr_compute STEP --spec SPEC.json``.
"""

__version__ = "0.1.0"
