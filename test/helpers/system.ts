import type { lookup } from 'node:dns';
import type { Config } from '../../shared/config.js';
import { createLogger, type Logger } from '../../shared/logger.js';
import { startApi, type ApiHandle } from '../../producers/api/start-api.js';
import {
  startDispatchWorker,
  type DispatchWorkerHandle,
} from '../../workers/dispatch/dispatch-worker.js';
import {
  startDeliveryWorker,
  type DeliveryWorkerHandle,
} from '../../workers/delivery/delivery-worker.js';
import type { TestEnv } from './test-env.js';

export interface RunningSystem {
  readonly config: Config;
  readonly api: ApiHandle;
  readonly dispatch: DispatchWorkerHandle | null;
  readonly delivery: DeliveryWorkerHandle | null;
  /** Calls the API with a JSON body and returns the status and parsed body. */
  request(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: any }>;
  stop(): Promise<void>;
}

/**
 * Starts the API and, unless turned off, one dispatch and one delivery
 * worker in this process against a test env.
 */
export async function startSystem(
  env: TestEnv,
  options: {
    overrides?: Record<string, string>;
    dispatch?: boolean;
    delivery?: boolean;
    dnsLookup?: typeof lookup;
    /** Logger of every role; tests pass one to check log lines. */
    logger?: Logger;
  } = {},
): Promise<RunningSystem> {
  const config = env.config(options.overrides);
  const logger = options.logger ?? createLogger('test', config.logLevel);
  const api = await startApi(config, logger);
  const dispatch =
    options.dispatch === false ? null : startDispatchWorker(config, logger);
  const delivery =
    options.delivery === false
      ? null
      : startDeliveryWorker(config, logger, { dnsLookup: options.dnsLookup });
  return {
    config,
    api,
    dispatch,
    delivery,
    async request(method, path, body) {
      const response = await fetch(`${api.url}${path}`, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      });
      const text = await response.text();
      return { status: response.status, body: text === '' ? null : JSON.parse(text) };
    },
    async stop() {
      await api.close();
      await dispatch?.close();
      await delivery?.close();
    },
  };
}
