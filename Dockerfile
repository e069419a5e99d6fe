# Backhaul in a container: docs/deploy.md#container. Build and run:
#   docker build -t backhaul .
#   docker run -d --name backhaul -p 1883:1883 -p 8080:8080 -v backhaul-data:/var/lib/backhaul --stop-timeout 30 backhaul
#   docker logs backhaul        # the first start prints an admin API token, once

# Build: the README's install command. `npm ci` installs what package-lock.json pins, builds the native SQLite and
# serial-port modules when no prebuilt one fits (python3, make, g++), and compiles the TypeScript and the dashboard.
FROM node:20-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN npm ci
# Only what runs: the compiled code and the production dependencies (the dev ones built it).
RUN npm prune --omit=dev

# Run: the same base, so the native modules built above fit; no compiler, no npm cache, not root.
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /opt/backhaul
COPY --from=build /src/package.json /src/package-lock.json ./
COPY --from=build /src/bin ./bin
COPY --from=build /src/dist/src ./dist/src
COPY --from=build /src/dist/dashboard ./dist/dashboard
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/docs ./docs
COPY --from=build /src/examples ./examples
# A dedicated user (in dialout, for a serial radio receiver passed in with --device /dev/ttyUSB0), and its data
# folder 0700, as Backhaul makes it.
RUN groupadd --system backhaul \
 && useradd --system --gid backhaul --groups dialout --home-dir /var/lib/backhaul --shell /usr/sbin/nologin backhaul \
 && install -d -o backhaul -g backhaul -m 0700 /var/lib/backhaul \
 && install -D -m 0644 examples/container/backhaul.jsonc /etc/backhaul/backhaul.jsonc
USER backhaul
VOLUME ["/var/lib/backhaul"]
# MQTT (the embedded broker) and HTTP (API, dashboard, device bootstrap), as in examples/container/backhaul.jsonc.
EXPOSE 1883 8080
# SIGTERM: inputs stop, each sink gets up to 5 s to deliver, the rest stays in its outbox (stop with -t 30).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8080/api/v1/ready').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "/opt/backhaul/bin/backhaul.js"]
CMD ["start", "-c", "/etc/backhaul/backhaul.jsonc"]
