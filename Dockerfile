# syntax=docker/dockerfile:1
# One Dockerfile, two images:
#   docker build --target router   -t ghcr.io/modelroute/modelroute:0.1.0 .
#   docker build --target operator -t ghcr.io/modelroute/modelroute-operator:0.1.0 .
# Wheels are built in a throwaway stage, so the final images carry no compiler,
# no pip cache and no source tree; they run as an unprivileged user and have no
# HEALTHCHECK (Kubernetes probes /healthz and /readyz instead).
#
# The user is uid/gid 65532 (distroless's "nonroot"), the same the pods run as
# (operator/render.py's RUN_AS, the chart's podSecurityContext; tests/operator checks
# they agree). Nothing in the images writes to the root filesystem: the pods mount it
# read-only and give each container an emptyDir at /tmp.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
RUN pip install --no-cache-dir --upgrade pip
COPY pyproject.toml README.md ./
COPY modelroute ./modelroute
COPY router ./router
COPY operator ./operator
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[operator]"

FROM python:3.11-slim-bookworm AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN groupadd --system --gid 65532 modelroute \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin modelroute
WORKDIR /

FROM base AS router
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels modelroute && rm -rf /wheels
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["modelroute"]
CMD ["router", "--config", "/etc/modelroute/route.yaml", "--host", "0.0.0.0", "--port", "8080"]

FROM base AS operator
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels "modelroute[operator]" && rm -rf /wheels
USER 65532:65532
ENTRYPOINT ["modelroute"]
CMD ["operator"]
