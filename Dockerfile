# Strategy Engine image: the `strategy-engine` command with the python3 kernel papermill needs.
# Multi-stage: wheels are built in `build`, the runtime stage has no compiler and runs as a non-root user.
# BASE_IMAGE: the registry build uses python:3.11-slim; `make image-check` builds the same stages on a Debian
# bookworm base made with mmdebstrap (Python 3.11 too), since base images cannot be pulled there.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE} AS build
# torch: the CPU build explicitly (the default index resolves to a ~3 GB CUDA build); TORCH_INDEX_URL is where
# "torch==V+cpu" is found (a local build passes a folder of wheels through PIP_FIND_LINKS instead).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
WORKDIR /src
COPY requirements.txt ./
RUN pip wheel --no-cache-dir --wheel-dir /wheels --extra-index-url "${TORCH_INDEX_URL}" \
        "$(grep '^torch==' requirements.txt)+cpu" \
 && grep -v '^torch==' requirements.txt > requirements-notorch.txt \
 && pip wheel --no-cache-dir --wheel-dir /wheels -r requirements-notorch.txt

FROM ${BASE_IMAGE} AS runtime
# The commit the image was built from (CI passes --build-arg GIT_COMMIT=$GITHUB_SHA): the image has no .git, so
# the run manifests take it from the environment (GIT_COMMIT: runs.archive.code_version; STRATEGY_ENGINE_GIT_COMMIT:
# runs.launcher.image_identity, required on Cloud Run). The digest is known only after the push: Terraform sets
# STRATEGY_ENGINE_IMAGE_DIGEST on the job and the service.
ARG GIT_COMMIT=unknown
LABEL org.opencontainers.image.revision="${GIT_COMMIT}" org.opencontainers.image.title="strategy-engine"
# NUMBA_CPU_NAME=generic: the numba kernels compiled below are cached for any x86-64 CPU, not only the build machine's.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 STRATEGY_ENGINE_HOME=/app MPLBACKEND=Agg NUMBA_CPU_NAME=generic \
    GIT_COMMIT=${GIT_COMMIT} STRATEGY_ENGINE_GIT_COMMIT=${GIT_COMMIT}
# libgomp1: numba's OpenMP threading layer for the rule kernels' threads (without it numba falls back to its
# workqueue layer, which aborts when two threads launch parallel kernels at once). Its version is the base's.
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 10001 --user-group engine
WORKDIR /app
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels /wheels/*.whl && rm -rf /wheels
COPY --chown=engine:engine settings.ini setup.py requirements.txt README.md ./
COPY --chown=engine:engine strategy_engine ./strategy_engine
COPY --chown=engine:engine nbs ./nbs
COPY --chown=engine:engine config ./config
# compileall: PYTHONDONTWRITEBYTECODE stops Python writing bytecode and an editable install ships none:
# without it every process compiles the package's sources on import (~30 ms for strategy_engine.backtest)
RUN pip install --no-cache-dir --no-deps -e . \
 && python -m compileall -q /app/strategy_engine \
 && python -m ipykernel install --name python3 --display-name "Python 3" \
 && mkdir -p /app/runs && chown engine:engine /app/runs
USER 10001:10001
# The numba cache in the user's cache folder (strategy_engine.core.numba_cache_dir), named so build and run agree.
ENV NUMBA_CACHE_DIR=/home/engine/.cache/strategy-engine/numba
# Warm-up: one day (validate, daily, report) on the synthetic universe compiles every numba kernel the scheduled
# stages run into $NUMBA_CACHE_DIR, so a fresh container does not spend ~45 s compiling on its first run; the kernels
# take one type whatever the data source (core.as_matrix), so the market store's runs find them too (make
# image-check checks that a day in the image compiles none).
RUN strategy-engine run day --as-of latest --data synthetic --archive /tmp/warm --warehouse duckdb:////tmp/warm/wh.duckdb \
        --no-alerts \
 && rm -rf /tmp/warm
ENTRYPOINT ["strategy-engine"]
CMD ["--help"]
