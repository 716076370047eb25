import type { Config } from '../shared/config.js';
import { checkSchemaReady } from '../shared/db/schema-check.js';
import type { Service } from '../shared/lifecycle.js';
import { runCloseSteps } from '../shared/lifecycle.js';
import type { Logger } from '../shared/logger.js';
import { startHealthServer, type HealthServerHandle } from '../shared/ops/health-server.js';
import { openProcessOps } from '../shared/ops/process-ops.js';
import { flushTracing, startTracing } from '../shared/ops/tracing.js';
import { startApi } from '../producers/api/start-api.js';
import { startDashboard } from '../producers/api/start-dashboard.js';
import { startDeliveryWorker } from '../workers/delivery/delivery-worker.js';
import { startDispatchWorker } from '../workers/dispatch/dispatch-worker.js';

/** The roles that a process can run, alone or together. */
export const ROLES = ['api', 'dispatch', 'delivery', 'dashboard'] as const;
export type Role = (typeof ROLES)[number];

/** The roles that `all` starts. */
export const ALL_ROLES: readonly Role[] = ROLES;

/** An invalid role list; the message names the word and the valid roles. */
export class RoleError extends Error {}

/**
 * Parses role names such as `api delivery` or `all`, in any order and
 * without repeats. Throws RoleError for an unknown or missing name.
 */
export function parseRoles(words: readonly string[]): Role[] {
  if (words.length === 0) {
    throw new RoleError(`no role given; name one or more of ${ROLES.join(', ')}, or all`);
  }
  const roles = new Set<Role>();
  for (const word of words) {
    if (word === 'all') {
      for (const role of ALL_ROLES) roles.add(role);
      continue;
    }
    if (!(ROLES as readonly string[]).includes(word)) {
      throw new RoleError(`unknown role "${word}"; use ${ROLES.join(', ')} or all`);
    }
    roles.add(word as Role);
  }
  return ROLES.filter((role) => roles.has(role));
}

/**
 * Starts `roles` in this process with one metrics registry, one health
 * check and, when HEALTH_PORT is set, one health server for all of them.
 * The API serves Bull Board, so `dashboard` next to `api` starts nothing
 * more. Processes that run api, dispatch or dashboard also report queue
 * depths and the oldest undispatched event. Delivery-only processes, of
 * which there are usually many, do not.
 */
export async function startRoles(
  roles: readonly Role[],
  config: Config,
  logger: Logger,
): Promise<Service> {
  if ((await checkSchemaReady(config.databaseUrl)) === 'unreachable') {
    logger.warn('PostgreSQL is unreachable at start-up; the roles start anyway and reconnect');
  }
  const has = (role: Role) => roles.includes(role);
  const loggerOf = (role: Role) => (roles.length === 1 ? logger : logger.child({ component: role }));
  // Before any queue or worker exists, because they take the tracing bridge
  // when they are created.
  startTracing({ endpoint: config.otelTracesEndpoint, serviceName: `webhook-${roles.join('+')}`, logger });
  const ops = openProcessOps(config, logger, roles.join('+'));
  ops.startStats({ queueStats: has('api') || has('dispatch') || has('dashboard') });

  const servers: Service[] = [];
  const workers: Service[] = [];
  let healthServer: HealthServerHandle | undefined;
  const closeAll = () =>
    runCloseSteps(
      [
        // HTTP servers stop first, so that no new events arrive while workers drain.
        { name: 'closing the HTTP servers', run: () => Promise.all(servers.map((server) => server.close())) },
        { name: 'closing the workers', run: () => Promise.all(workers.map((worker) => worker.close())), timeoutMs: config.shutdownGraceMs },
        // The health server keeps responding until the workers have drained,
        // so that liveness probes do not fail during a long stop.
        { name: 'closing the health server', run: async () => healthServer?.close() },
        { name: 'closing the health check and metrics', run: () => ops.close() },
        { name: 'sending buffered spans', run: () => flushTracing() },
      ],
      logger,
    );

  try {
    if (has('api')) {
      servers.push(await startApi(config, loggerOf('api'), ops));
    } else if (has('dashboard')) {
      // With the API in the process, its server serves the dashboard too.
      servers.push(await startDashboard(config, loggerOf('dashboard'), ops));
    }
    if (has('dispatch')) workers.push(startDispatchWorker(config, loggerOf('dispatch')));
    if (has('delivery')) workers.push(startDeliveryWorker(config, loggerOf('delivery')));
    if (config.healthPort !== 0) {
      healthServer = await startHealthServer(ops, {
        host: config.healthHost,
        port: config.healthPort,
        logger,
      });
    }
  } catch (error) {
    await closeAll();
    throw error;
  }

  let closing: Promise<void> | undefined;
  return {
    close() {
      closing ??= closeAll();
      return closing;
    },
  };
}
