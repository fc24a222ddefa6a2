# syntax=docker/dockerfile:1
#
# audex workers: every build/bin/audex-* program (audex-converter,
# audex-notifier, audex-user, as they exist) on Debian 12.
#
#   docker build -f docker/workers.Dockerfile -t audex-workers .
#   docker run audex-workers                      # audex-converter run
#   docker run audex-workers audex-notifier run
#
# Built by the scripts `make` runs (scripts/setup.sh, then `make
# workers`); the runtime stage holds only the shared libraries they link.
# The programs take their settings from the environment (MONGODB_URI,
# REDIS_URL, METRICS_PORT, ...: `audex-converter --help`) and serve
# /metrics and /healthz on METRICS_PORT, on loopback unless METRICS_ADDR
# says otherwise (docker/compose.yaml and k8s/ set 0.0.0.0).  They run as
# user audex.

FROM debian:bookworm AS build

WORKDIR /src

# the packages first: this layer is shared with docker/nginx.Dockerfile
COPY scripts/setup.sh scripts/setup.sh
RUN scripts/setup.sh --no-ferretdb

COPY Makefile Makefile
COPY lib lib
COPY store store
COPY workers workers
RUN make workers \
    && strip --strip-debug build/bin/audex-*


FROM debian:bookworm-slim

# FFmpeg 5.1, LAME, the MongoDB C driver, hiredis, libcurl, jansson,
# argon2, OpenSSL, libmicrohttpd (/metrics, /healthz); curl for the
# health check
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
         libavformat59 libavcodec59 libavutil57 libswresample4 libmp3lame0 \
         libmongoc-1.0-0 libbson-1.0-0 libhiredis0.14 libcurl4 libjansson4 \
         libargon2-1 libssl3 libmicrohttpd12 \
         curl ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --no-create-home \
         --home-dir /nonexistent --shell /usr/sbin/nologin audex

COPY --from=build /src/build/bin/ /usr/local/bin/

USER audex
EXPOSE 9100 9101
STOPSIGNAL SIGTERM

CMD ["audex-converter", "run"]
