/** A response with its body as text and, when the text is JSON, parsed. */
export interface RawResponse {
  status: number;
  text: string;
  body: any;
}

/**
 * Sends a request with exactly the given headers and body bytes, for the
 * cases that the JSON helper of RunningSystem cannot express (a wrong
 * Content-Type, a body that is not JSON, a number past 2^53).
 */
export async function sendRaw(
  baseUrl: string,
  method: string,
  path: string,
  options: { headers?: Record<string, string>; body?: string } = {},
): Promise<RawResponse> {
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers: options.headers ?? {},
    body: options.body,
  });
  const text = await response.text();
  let body: unknown = null;
  try {
    body = text === '' ? null : JSON.parse(text);
  } catch {
    body = null;
  }
  return { status: response.status, text, body };
}
