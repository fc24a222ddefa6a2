# syntax=docker/dockerfile:1
#
# audex nginx: Debian 12's own nginx with the audex module.
#
#   docker build -f docker/nginx.Dockerfile -t audex-nginx .
#
# The module is built by the scripts `make` runs (scripts/setup.sh, then
# scripts/build-module.sh) against Debian's nginx-dev, and the runtime
# stage installs that very nginx version: a dynamic module loads only into
# the nginx it was configured for.  The web page (html/), the API
# description (docs/openapi.yaml), Swagger UI and tus-js-client's browser
# bundle (scripts/install-web.sh) go where conf/nginx.conf.example serves
# them from, /usr/share/audex.
# The container runs as www-data; its entry point
# (docker/nginx-entrypoint.sh) makes nginx.conf from the example and the
# environment, see its --help.

FROM debian:bookworm AS build

WORKDIR /src

# the packages first: this layer is shared with docker/workers.Dockerfile
COPY scripts/setup.sh scripts/setup.sh
RUN scripts/setup.sh --no-ferretdb

COPY config config
COPY lib lib
COPY store store
COPY ngx_module ngx_module
COPY scripts/build-module.sh scripts/build-module.sh
RUN scripts/build-module.sh build \
    && dpkg-query -W -f '${Version}' nginx > build/nginx.version


# Swagger UI and tus-js-client, at the versions `make web` installs
# (Node.js 20 for npm)
FROM node:20-bookworm-slim AS web

COPY scripts/install-web.sh /src/scripts/install-web.sh
RUN /src/scripts/install-web.sh /web


FROM debian:bookworm-slim

COPY --from=build /src/build/nginx.version /tmp/nginx.version

# nginx pinned to the build stage's version; the module's libraries; curl
# for the health check
RUN apt-get update \
    && v=$(cat /tmp/nginx.version) \
    && { apt-get install -y --no-install-recommends "nginx=$v" \
         || { echo "audex: nginx $v, which the module was built for, is" \
                   "not installable: rebuild with --no-cache" >&2; \
              exit 1; }; } \
    && apt-get install -y --no-install-recommends \
         libmongoc-1.0-0 libbson-1.0-0 libhiredis0.14 libjansson4 \
         libargon2-1 libssl3 \
         curl ca-certificates \
    && rm -rf /var/lib/apt/lists/* /tmp/nginx.version

COPY --from=build /src/build/ngx_http_audex_module.so \
     /usr/lib/nginx/modules/ngx_http_audex_module.so
COPY conf/nginx.conf.example /etc/audex/nginx.conf.example
COPY html /usr/share/audex/html
COPY docs/openapi.yaml /usr/share/audex/docs/openapi.yaml
COPY --from=web /web/node_modules/swagger-ui-dist /usr/share/audex/swagger-ui
COPY --from=web /web/node_modules/tus-js-client/dist/tus.min.js \
     /usr/share/audex/tus-js-client/tus.min.js
COPY docker/nginx-conf.sh docker/nginx-entrypoint.sh /usr/local/lib/audex/

# the module loads into this nginx, or the build fails here
RUN printf 'load_module %s;\nevents {}\n' \
        /usr/lib/nginx/modules/ngx_http_audex_module.so > /tmp/load.conf \
    && nginx -q -t -c /tmp/load.conf -g 'pid /tmp/load.pid;' \
    && rm -f /tmp/load.conf /tmp/load.pid \
    && install -d -o www-data -g www-data -m 0750 /var/lib/audex

USER www-data
ENV AUDEX_PORT=8080
EXPOSE 8080
STOPSIGNAL SIGQUIT

HEALTHCHECK --interval=10s --timeout=5s --start-period=20s \
    CMD curl -fsS -o /dev/null "http://127.0.0.1:${AUDEX_PORT}/healthz"

ENTRYPOINT ["/usr/local/lib/audex/nginx-entrypoint.sh"]
