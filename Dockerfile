# Strategy Engine image: the `strategy-engine` command with the python3 kernel papermill needs.
# Multi-stage: wheels are built in `build`, the runtime stage has no compiler and runs as a non-root user.
FROM python:3.11-slim AS build
WORKDIR /src
COPY requirements.txt ./
# torch: the CPU build explicitly (the default index resolves to a ~3 GB CUDA build).
RUN pip wheel --wheel-dir /wheels --extra-index-url https://download.pytorch.org/whl/cpu \
        "$(grep '^torch==' requirements.txt)+cpu" \
 && grep -v '^torch==' requirements.txt > requirements-notorch.txt \
 && pip wheel --wheel-dir /wheels -r requirements-notorch.txt

FROM python:3.11-slim AS runtime
# NUMBA_CPU_NAME=generic: the numba kernels compiled below are cached for any x86-64 CPU, not only the build machine's.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 STRATEGY_ENGINE_HOME=/app MPLBACKEND=Agg NUMBA_CPU_NAME=generic
RUN useradd --create-home --uid 10001 engine
WORKDIR /app
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels /wheels/*.whl && rm -rf /wheels
COPY --chown=engine:engine settings.ini setup.py requirements.txt README.md ./
COPY --chown=engine:engine strategy_engine ./strategy_engine
COPY --chown=engine:engine nbs ./nbs
COPY --chown=engine:engine config ./config
RUN pip install --no-cache-dir --no-deps -e . \
 && python -m ipykernel install --name python3 --display-name "Python 3" \
 && mkdir -p /app/runs && chown engine:engine /app/runs
USER engine
# Warm-up: one daily run on the synthetic universe compiles every numba kernel of the daily job into the package's
# __pycache__ and builds matplotlib's font cache, so a fresh container does not spend ~3.5 s compiling on each run.
RUN strategy-engine run daily --as-of latest --data synthetic --archive /tmp/warm --warehouse duckdb:////tmp/warm/wh.duckdb \
        --no-alerts --no-log-output \
 && rm -rf /tmp/warm
ENTRYPOINT ["strategy-engine"]
CMD ["--help"]
