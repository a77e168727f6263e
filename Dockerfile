# syntax=docker/dockerfile:1.7
# The Kuwa image (docs/installation.md). Build from the repository root:
#
#   docker build -t kuwa .                       # target runtime: gateway, kernel, worker,
#                                                #   executors with the openai or debug backend
#   docker build --target cpu -t kuwa-cpu .      # + transformers and the CPU build of torch
#   docker build --target gpu -t kuwa-gpu .      # + vLLM (CUDA 12; run with the NVIDIA
#                                                #   Container Toolkit, e.g. --gpus all)
#
# compose/docker-compose.yml builds all three. Every image runs as the unprivileged user
# kuwa (uid 10001, numeric so that Kubernetes' runAsNonRoot can check it) with its data
# folder in /data, serves the gateway by default, and checks its own health with
# kuwa-healthcheck (compose/healthcheck.py).

ARG PYTHON_VERSION=3.12
ARG NODE_VERSION=20

# --- the chat page's browser libraries (markdown-it, DOMPurify, highlight.js) from npm ------
FROM node:${NODE_VERSION}-bookworm-slim AS assets
WORKDIR /assets
COPY src/kuwa/web/assets/package.json src/kuwa/web/assets/package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

# --- the kuwa wheel, with those libraries inside -------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY --from=assets /assets/node_modules ./src/kuwa/web/assets/node_modules
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# --- virtual environments: base, + transformers on CPU torch, + vLLM -----------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS venv
ENV PATH=/opt/kuwa/bin:$PATH PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/kuwa
COPY --from=wheel /wheels /wheels
RUN pip install --no-cache-dir /wheels/kuwa-*.whl

FROM venv AS venv-cpu
# torch from PyTorch's CPU index (the default wheel brings CUDA libraries along); versions
# follow the kuwa[transformers] extra in pyproject.toml.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# hadolint ignore=DL3013
RUN pip install --no-cache-dir --index-url "$TORCH_INDEX_URL" torch \
 && whl="$(echo /wheels/kuwa-*.whl)" \
 && pip install --no-cache-dir "${whl}[transformers]"

FROM venv AS venv-gpu
# The engine's version follows the kuwa[vllm] extra in pyproject.toml.
# hadolint ignore=DL3013
RUN whl="$(echo /wheels/kuwa-*.whl)" \
 && pip install --no-cache-dir "${whl}[vllm]"

# --- what every runtime image shares: slim Python, a non-root user, the health check -------
FROM python:${PYTHON_VERSION}-slim-bookworm AS base
RUN groupadd --system --gid 10001 kuwa \
 && useradd --system --uid 10001 --gid kuwa --home-dir /home/kuwa --create-home \
      --shell /usr/sbin/nologin kuwa \
 && install -d -o kuwa -g kuwa -m 0750 /data \
 && install -d -o kuwa -g kuwa /home/kuwa/.cache /home/kuwa/.cache/huggingface
COPY --chmod=0755 compose/healthcheck.py /usr/local/bin/kuwa-healthcheck
ENV PATH=/opt/kuwa/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HOME=/home/kuwa/.cache/huggingface \
    KUWA_DATA_DIR=/data \
    KUWA_HOST=0.0.0.0
WORKDIR /data
EXPOSE 8000
# The role comes from the container's command (kuwa-cli gateway|executor|kernel|worker start).
HEALTHCHECK --interval=15s --timeout=6s --start-period=60s --retries=3 CMD ["kuwa-healthcheck"]
CMD ["kuwa-cli", "gateway", "start"]

# --- GPU executors: vLLM. Triton compiles a small C helper when the engine starts: gcc --------
FROM base AS gpu
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
COPY --from=venv-gpu /opt/kuwa /opt/kuwa
USER 10001:10001

# --- CPU executors with the transformers backend ---------------------------------------------
FROM base AS cpu
COPY --from=venv-cpu /opt/kuwa /opt/kuwa
USER 10001:10001

# --- the default target: everything but model engines ----------------------------------------
FROM base AS runtime
COPY --from=venv /opt/kuwa /opt/kuwa
USER 10001:10001
