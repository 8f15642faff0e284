# One image recipe for every service: docker build --build-arg SERVICE=correlator -t fao-correlator .
FROM python:3.11-slim
ARG SERVICE
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 FAO_SERVICE=${SERVICE}
WORKDIR /app
COPY constraints.txt ./
COPY libs/schemas libs/schemas
COPY libs/runtime libs/runtime
COPY services/${SERVICE} services/${SERVICE}
RUN test -n "${SERVICE}" && \
    pip install --no-cache-dir -c constraints.txt ./libs/schemas ./libs/runtime ./services/${SERVICE} uvloop tzdata
# The reports volume (compose): written by the reporter, read by the gateway; a new named volume
# takes this folder's owner.
RUN mkdir -p /reports && chown nobody /reports
USER nobody
# 9100: /healthz and /metrics of every service; 8080: the gateway's public HTTP (LINE webhook, API,
# dashboard, status page).
EXPOSE 9100 8080
ENV FAO_HTTP_HOST=0.0.0.0 FAO_HTTP_PORT=9100 FAO_GATEWAY_HOST=0.0.0.0 FAO_GATEWAY_PORT=8080
CMD ["sh", "-c", "exec python -m fao.${FAO_SERVICE}"]
