/**
 * Base of the errors that reach API clients and CLI users. `code` is stable
 * and meant for programs; `message` names the input and the rule.
 */
export class WebhookError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly statusCode: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Input that breaks a rule; `field` is its path, such as `data.big`. */
export class ValidationError extends WebhookError {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super('invalid_request', `${field}: ${message}`, 400);
  }
}

export class NotFoundError extends WebhookError {
  constructor(kind: string, id: string) {
    super('not_found', `${kind} "${id}" was not found`, 404);
  }
}

/** A request that conflicts with stored state, such as a taken name. */
export class ConflictError extends WebhookError {
  constructor(message: string) {
    super('conflict', message, 409);
  }
}
