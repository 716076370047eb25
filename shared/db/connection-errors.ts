/** Node.js socket error codes that mean the database server was not reached or went away. */
const SOCKET_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** Messages of node-postgres (pg 8, pg-pool 3) for a lost or unobtainable connection. */
const DRIVER_MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'Client has encountered a connection error and is not queryable',
  'Client was closed and is not queryable',
];

/**
 * Tells whether an error came from the connection to PostgreSQL rather than
 * from a statement. These are socket errors, connections that node-postgres
 * lost or could not get from its pool, and server errors of SQLSTATE class
 * 08 (connection exception) or 57P01-57P03 (the server is shutting down or
 * starting). Such an error fails every statement alike, whatever its input.
 */
export function isConnectionError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (SOCKET_ERROR_CODES.has(code)) return true;
    if (code.startsWith('08') || /^57P0[1-3]$/.test(code)) return true;
  }
  return DRIVER_MESSAGES.some((message) => error.message.startsWith(message));
}
