# The outbox worker, built from this repository:
#   docker build -t outbox-worker:0.1.0 .
#   docker run --rm -e DATABASE_URL=... -e KAFKA_BROKERS=... -p 9464:9464 outbox-worker:0.1.0
# Arguments after the image name go to the worker: `status`, `--help`, `--slot orders`, ...
# See docs/deploying.md.

FROM node:22-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# No install scripts: the package's own `prepare` would build before the sources are here, and
# compiling needs none of the dev tools' downloads (Prisma engines, esbuild).
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY worker ./worker
RUN npm run build

FROM node:22-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /src/dist ./dist
# The shipped migration and model: `init` and `--version` read them.
COPY prisma/outbox ./prisma/outbox
# The base image's `node` user, by number so that Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
# /healthz, /readyz and /metrics (HEALTH_PORT).
EXPOSE 9464
# node itself is the container's process: SIGTERM reaches the worker, which flushes in-flight
# events and confirms before it exits. Through npx or npm the signal is not reliably passed on.
# --max-semi-space-size=16: under a memory limit Node sizes V8's young generation from it (1 MB
# semi-spaces at 512 MiB), and the worker, which makes short-lived garbage per event, then drains
# at about half its rate; Node 24 without a limit grows it to 64 MB and peaks near twice the
# memory. 16 MB is what Node 20 and 22 use on a large machine (docs/deploying.md#memory).
ENTRYPOINT ["node", "--max-semi-space-size=16", "dist/worker/cli.js"]
