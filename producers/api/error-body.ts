/** Builds the body of every error response of the API, in its one shape. */
export function errorBody(code: string, message: string, requestId: string) {
  return { error: { code, message, request_id: requestId } };
}
