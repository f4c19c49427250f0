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
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 STRATEGY_ENGINE_HOME=/app MPLBACKEND=Agg
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
ENTRYPOINT ["strategy-engine"]
CMD ["--help"]
