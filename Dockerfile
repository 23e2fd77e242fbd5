# GPU agent for the fam Prefect flows: a Prefect *process* worker on pool `fam-gpu` whose flow
# runs are subprocesses of this container, so they see the GPU the container was given.
#   docker build --build-arg GIT_COMMIT=$(git rev-parse HEAD) -t fam-worker .
#   docker run --gpus all -e PREFECT_API_URL=http://<server>:4200/api -v /srv/fam:/data fam-worker
# torch comes from PyPI's CUDA wheels (requirements.lock pins torch 2.14.1): the host needs only
# the NVIDIA driver and the container toolkit, no CUDA image. `bash scripts/docker_smoke.sh`
# builds and runs it in a local engine with no registry (BASE made offline with debootstrap).
ARG BASE=python:3.11-slim
FROM ${BASE}

# No system packages beyond Python: the torch wheels bundle CUDA and OpenMP, dlib-bin is a
# manylinux wheel. The import check at the end of the build fails the build (not a later run) if
# that changes. A virtual environment, so that a Debian base's system Python stays untouched.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    PATH=/opt/venv/bin:$PATH

RUN python3 -m venv /opt/venv && useradd --create-home --uid 1000 fam
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
    && python -c "import torch, dlib, fam, tasks.protect, tasks.stages, flows.protect; print('torch', torch.__version__)" \
    && ln -s /data/runs /app/runs

# .git is not copied: the commit the image was built from is recorded by its build arguments
# (fam.provenance reads them outside a checkout), last so that a new commit rebuilds no layer above.
ARG GIT_COMMIT=""
ARG GIT_DIRTY=0
ENV FAM_CODE_COMMIT=${GIT_COMMIT} \
    FAM_CODE_DIRTY=${GIT_DIRTY}

# Runs unprivileged; the host folder mounted at /data must be writable by uid 1000. params.yaml's
# relative paths (runs/mlflow.db, runs/mlartifacts, outputs) resolve through /app/runs -> /data/runs,
# so lineage and outputs land on the volume, not in the root-owned image.
USER 1000:1000
VOLUME ["/data"]
CMD ["prefect", "worker", "start", "--pool", "fam-gpu", "--type", "process", "--limit", "1"]
