# GPU agent for the fam Prefect flows: a Prefect *process* worker on pool `fam-gpu` whose flow
# runs are subprocesses of this container, so they see the GPU the container was given.
#   docker build -t fam-worker .
#   docker run --gpus all -e PREFECT_API_URL=http://<server>:4200/api -v /srv/fam:/data fam-worker
# torch comes from PyPI's CUDA wheels (requirements.lock pins torch 2.14.1): the host needs only
# the NVIDIA driver and the container toolkit, no CUDA image. Not built on the dev machines (no
# Docker engine there); `hadolint Dockerfile` checks it in tests/test_dvc_pipeline.py.
FROM python:3.11-slim

# No system packages: the torch wheels bundle CUDA and OpenMP, dlib-bin is a manylinux wheel.
# The import check at the end of the build fails the build (not a later run) if that changes.
# .git is not copied, so manifests record the package version as the code version.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    FAM_PROJECT_DIR=/app

RUN useradd --create-home --uid 1000 fam
WORKDIR /app

# Dependencies first, in their own layer: code changes do not reinstall torch.
COPY requirements.lock ./
RUN pip install -r requirements.lock \
    && pip install --no-deps facenet-pytorch==2.6.0

COPY pyproject.toml README.md params.yaml prefect.yaml ./
COPY fam ./fam
COPY tasks ./tasks
COPY flows ./flows
RUN pip install --no-deps --no-build-isolation . \
    && python -c "import torch, dlib, fam, tasks.protect, tasks.stages, flows.protect; print('torch', torch.__version__)"

# Runs unprivileged; the host folder mounted at /data must be writable by uid 1000.
USER 1000:1000
# Data, keys (a Prefect Secret block is preferred) and outputs are mounted at /data.
VOLUME ["/data"]
CMD ["prefect", "worker", "start", "--pool", "fam-gpu", "--type", "process", "--limit", "1"]
