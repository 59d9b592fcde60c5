# syntax=docker/dockerfile:1
# The MLflow tracking server of the compose stack: the same MLflow version as the project's venv, plus
# the PostgreSQL driver its backend store needs (MLflow's own images leave it out).
#
#   docker build -f docker/mlflow.Dockerfile -t csr-mlflow docker
FROM python:3.11-slim

ARG MLFLOW_VERSION=3.17.2
# mlflow[auth] brings Flask-WTF, which the basic-auth app of the compose stack needs.
RUN pip install --no-cache-dir --disable-pip-version-check "mlflow[auth]==${MLFLOW_VERSION}" "psycopg2-binary==2.9.13"

EXPOSE 5000
CMD ["mlflow", "server", "--serve-artifacts", "--host", "0.0.0.0", "--port", "5000"]
