# One image for every role: the API, the dispatch and delivery workers, the
# dashboard, the migration and the `webhooks` CLI. docker-compose.yml picks
# the role with its command (`scripts/start.ts <role>`). Node runs the
# TypeScript sources through tsx, so there is no compile step, and tsx is a
# production dependency for that reason.

# Production dependencies only: tests and the demo are not part of the image.
FROM node:20-bookworm-slim AS deps
WORKDIR /app
# The Prisma CLI checks for updates over the network unless this is set.
ENV CHECKPOINT_DISABLE=1
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

# Generates the Prisma client into shared/db/generated. prisma.config.ts
# reads DATABASE_URL; a placeholder keeps the Prisma CLI offline, because
# generating never connects to the database.
FROM deps AS generate
COPY prisma.config.ts ./
COPY prisma ./prisma
RUN DATABASE_URL=postgresql://build@localhost:5432/build npx prisma generate

FROM node:20-bookworm-slim AS runtime
WORKDIR /app
ENV NODE_ENV=production \
    CHECKPOINT_DISABLE=1 \
    API_HOST=0.0.0.0 \
    HEALTH_HOST=0.0.0.0 \
    HEALTH_PORT=9464
# Files stay owned by root, so the processes, which run as the image's
# unprivileged `node` user, cannot change the code they run.
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json tsconfig.json prisma.config.ts ./
COPY prisma ./prisma
COPY shared ./shared
COPY producers ./producers
COPY workers ./workers
COPY scripts ./scripts
COPY bin ./bin
COPY --from=generate /app/shared/db/generated ./shared/db/generated
USER node
# The API or dashboard, and the health server with /metrics.
EXPOSE 3000 9464
# `node --import tsx` keeps each role a single process, so the SIGTERM of
# `docker stop` reaches its shutdown handler. Under `npx tsx` the signal
# stops npm and the worker never drains its jobs.
CMD ["node", "--import", "tsx", "scripts/start.ts", "api"]
