# syntax=docker/dockerfile:1
# The CSR worker image: Node 20 runs the Temporal workers and the CLI, the project's Python venv runs
# the compute steps. One image serves the CPU and the GPU workers: PyPI's Linux build of torch brings
# its own CUDA runtime (and runs on CPU too), so a GPU host needs only the NVIDIA driver and the
# NVIDIA Container Toolkit.
#
#   docker build -f docker/worker.Dockerfile -t csr-worker .      (from the repository root)
FROM node:20-bookworm-slim

# Debian 12's Python is 3.11, the version the venv is pinned and tested with.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*

ENV CSR_VENV=/opt/csr/venv \
    CSR_HOME=/csr \
    PYTHONUNBUFFERED=1
WORKDIR /app

# Dependencies first, each in its own layer, so a code change rebuilds neither.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY compute/requirements.txt compute/constraints.txt compute/
RUN python3 -m venv "$CSR_VENV" \
 && "$CSR_VENV/bin/pip" install --no-cache-dir --disable-pip-version-check -q 'pip>=24' \
 && "$CSR_VENV/bin/pip" install --no-cache-dir --disable-pip-version-check \
      -r compute/requirements.txt -c compute/constraints.txt

COPY . .
# The compute package itself (what scripts/bootstrap.js does after the requirements), then the same
# check bootstrap makes: the stack's tools must be in the venv.
RUN "$CSR_VENV/bin/pip" install --no-cache-dir --disable-pip-version-check -q --no-deps -e compute \
 && test -x "$CSR_VENV/bin/mlflow" && test -x "$CSR_VENV/bin/temporal"

VOLUME /csr
CMD ["npx", "csr", "worker", "--cpu"]
