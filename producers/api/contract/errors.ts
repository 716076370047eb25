import { z } from 'zod';

/**
 * Machine codes of error responses. Clients branch on `code`; the message is
 * for people and may change.
 */
export const ERROR_CODES = {
  invalid_request: 'a parameter, header or body field breaks a rule; the message names it (400)',
  unauthorized: 'the Authorization header is missing or holds the wrong token (401)',
  not_found: 'no route, or no resource with the given id or name (404)',
  conflict: 'the request conflicts with stored state, such as a taken name (409)',
  idempotency_key_in_progress:
    'a request with the same Idempotency-Key is still running; retry it after a moment (409)',
  idempotency_key_reused:
    'the Idempotency-Key was already used with a different request body (422)',
  probe_timeout:
    'a probe got no attempt result within PROBE_TIMEOUT_MS; its delivery stays readable (504)',
  payload_too_large: 'the body or the event data is over its size limit (413)',
  unsupported_media_type: 'the body is not sent as application/json (415)',
  internal_error: 'the server failed; its log has the details under the request id (500)',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** The one shape of every error response; `ApiError` in the client carries it. */
export const errorResponse = z
  .object({
    error: z.object({
      code: z.string().meta({
        description: `Stable machine code. Current codes: ${Object.entries(ERROR_CODES)
          .map(([code, meaning]) => `\`${code}\`: ${meaning}`)
          .join('; ')}.`,
        examples: ['invalid_request'],
      }),
      message: z.string().meta({
        description:
          'What failed, for people: it starts with the field, parameter or header and states the rule, such as `event_class: is missing`.',
      }),
      request_id: z.string().meta({
        description: 'Id of the request in the server log.',
      }),
    }),
  })
  .meta({ id: 'Error', description: 'Body of every 4xx and 5xx response.' });

export type ErrorResponse = z.output<typeof errorResponse>;

/** Descriptions of the error statuses in the OpenAPI document. */
export const ERROR_STATUS_DESCRIPTIONS: Record<number, string> = {
  400: 'Invalid request: a parameter, header or body field breaks a rule (`invalid_request`).',
  401: 'Missing or wrong bearer token (`unauthorized`), when the server sets API_TOKEN.',
  404: 'Not found (`not_found`).',
  409: 'Conflict with stored state (`conflict`, `idempotency_key_in_progress`).',
  413: 'Body or event data over its size limit (`payload_too_large`).',
  415: 'Body not sent as application/json (`unsupported_media_type`).',
  422: 'Idempotency-Key reused with a different body (`idempotency_key_reused`).',
  500: 'Server failure (`internal_error`).',
  503: 'A dependency of the server is unavailable.',
  504: 'A probe got no attempt result within PROBE_TIMEOUT_MS (`probe_timeout`).',
};
