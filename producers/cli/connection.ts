/**
 * Default base URL of the API. It matches the API's own defaults, API_HOST
 * 127.0.0.1 and API_PORT 3000, so that the CLI reaches a local API as
 * started.
 */
export const DEFAULT_API_URL = 'http://127.0.0.1:3000';

/**
 * Limit of one request, in ms. It must be longer than the API's
 * PROBE_TIMEOUT_MS (35 s by default), because a probe's response waits for
 * the attempt.
 */
export const DEFAULT_TIMEOUT_MS = 60_000;

export interface ApiSettings {
  apiUrl: string;
  /** Source of `apiUrl`, for messages: `--api-url`, `WEBHOOKS_API_URL` or `default`. */
  apiUrlSource: string;
  /** Bearer token; undefined sends no Authorization header. */
  token: string | undefined;
  timeoutMs: number;
}

/** A flag or variable with a value that the CLI cannot use. */
export class SettingsError extends Error {
  constructor(
    readonly setting: string,
    message: string,
  ) {
    super(`${setting}: ${message}`);
    this.name = 'SettingsError';
  }
}

function checkApiUrl(value: string, setting: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new SettingsError(setting, `must be an http or https URL such as ${DEFAULT_API_URL}, got "${value}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new SettingsError(setting, `must be an http or https URL such as ${DEFAULT_API_URL}, got "${value}"`);
  }
  if (url.username !== '' || url.password !== '') {
    throw new SettingsError(setting, 'must not contain credentials; pass the token with --token or API_TOKEN');
  }
  if (url.search !== '' || url.hash !== '') {
    throw new SettingsError(setting, `must not have a query or fragment, got "${value}"`);
  }
  return value;
}

function readTimeout(env: Record<string, string | undefined>): number {
  const value = env.WEBHOOKS_TIMEOUT_MS;
  if (value === undefined || value === '') return DEFAULT_TIMEOUT_MS;
  const timeoutMs = Number(value);
  if (!/^\d+$/.test(value) || timeoutMs < 1 || timeoutMs > 2_147_483_647) {
    throw new SettingsError('WEBHOOKS_TIMEOUT_MS', `must be a whole number of ms from 1 to 2147483647, got "${value}"`);
  }
  return timeoutMs;
}

/**
 * Returns the API settings from the global options, which win, and the
 * environment: WEBHOOKS_API_URL, API_TOKEN and WEBHOOKS_TIMEOUT_MS.
 */
export function resolveApiSettings(
  flags: { apiUrl?: string; token?: string },
  env: Record<string, string | undefined>,
): ApiSettings {
  let apiUrl = DEFAULT_API_URL;
  let apiUrlSource = 'default';
  if (flags.apiUrl !== undefined) {
    apiUrl = checkApiUrl(flags.apiUrl, '--api-url');
    apiUrlSource = '--api-url';
  } else if (env.WEBHOOKS_API_URL !== undefined && env.WEBHOOKS_API_URL !== '') {
    apiUrl = checkApiUrl(env.WEBHOOKS_API_URL, 'WEBHOOKS_API_URL');
    apiUrlSource = 'WEBHOOKS_API_URL';
  }
  const token = flags.token ?? env.API_TOKEN;
  return {
    apiUrl,
    apiUrlSource,
    token: token === undefined || token === '' ? undefined : token,
    timeoutMs: readTimeout(env),
  };
}

/** Returns the first `code` or `name` of interest along an error's cause chain. */
function findCause(error: unknown): { code?: string; name?: string; message: string } {
  let current: unknown = error;
  let innermost = error instanceof Error ? error.message : String(error);
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    const code = (current as Error & { code?: unknown }).code;
    if (typeof code === 'string') return { code, message: current.message };
    if (current.name === 'TimeoutError') return { name: current.name, message: current.message };
    innermost = current.message;
    current = current.cause;
  }
  return { message: innermost };
}

const HOW_TO_SET = 'set the URL with --api-url or WEBHOOKS_API_URL';

/**
 * Describes a request that got no HTTP response: refused or reset
 * connections, unknown hosts and timeouts, with the URL and how to change it.
 */
export function describeRequestFailure(error: unknown, settings: ApiSettings): string {
  const where = `the API at ${settings.apiUrl} (${settings.apiUrlSource === 'default' ? 'the default' : `from ${settings.apiUrlSource}`})`;
  const cause = findCause(error);
  if (cause.name === 'TimeoutError') {
    return `${where} sent no response within ${settings.timeoutMs} ms; raise WEBHOOKS_TIMEOUT_MS or check the API's log`;
  }
  switch (cause.code) {
    case 'ECONNREFUSED':
      return `cannot connect to ${where}: connection refused; start the API (npm run start:api) or ${HOW_TO_SET}`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `cannot connect to ${where}: host not found; ${HOW_TO_SET}`;
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
      return `${where} closed the connection before it responded; check the API's log, or ${HOW_TO_SET} if it is another server`;
    default:
      return `request to ${where} failed: ${cause.code === undefined ? cause.message : `${cause.code} ${cause.message}`}; ${HOW_TO_SET}`;
  }
}
