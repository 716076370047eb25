import type { DemoEvent } from './examples.js';

/** A receiver as POST /v1/receivers returns it, with the one-time secret. */
export interface CreatedReceiver {
  id: string;
  name: string;
  subscriptions: string[];
  secret: string;
}

/** The outcome of publishing every demo event through the API. */
export interface PublishSummary {
  accepted: number;
  /** Events the API did not accept, with the status or error of each. */
  rejected: { event: DemoEvent; reason: string }[];
}

/** A small client of the webhook HTTP API, over the global fetch. */
export class ApiClient {
  constructor(
    private readonly baseUrl: string,
    private readonly apiToken: string,
  ) {}

  /** Sends a JSON request and returns the status and parsed JSON body. */
  async request(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: unknown }> {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.apiToken !== '') headers.authorization = `Bearer ${this.apiToken}`;
    const response = await fetch(`${this.baseUrl}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await response.text();
    return { status: response.status, body: text === '' ? null : JSON.parse(text) };
  }

  /** Creates a receiver, and throws with the API's error message unless the API returns 201. */
  async createReceiver(input: {
    name: string;
    description: string;
    endpoint: string;
    subscriptions: string[];
  }): Promise<CreatedReceiver> {
    const { status, body } = await this.request('POST', '/v1/receivers', input);
    const created = body as Partial<CreatedReceiver> | null;
    if (status !== 201 || typeof created?.id !== 'string' || typeof created.secret !== 'string') {
      throw new Error(
        `POST /v1/receivers for "${input.name}" returned ${status}: ${JSON.stringify(body)}`,
      );
    }
    return created as CreatedReceiver;
  }

  /**
   * Publishes every event through POST /v1/events with at most `concurrency`
   * requests in flight, and calls `onAccepted` after each 202.
   */
  async publishAll(
    events: readonly DemoEvent[],
    concurrency: number,
    onAccepted: () => void,
    signal: AbortSignal,
  ): Promise<PublishSummary> {
    const summary: PublishSummary = { accepted: 0, rejected: [] };
    let next = 0;
    const publishNext = async (): Promise<void> => {
      while (next < events.length && !signal.aborted) {
        const event = events[next++]!;
        const reason = await this.publish(event);
        if (reason === null) {
          summary.accepted++;
          onAccepted();
        } else {
          summary.rejected.push({ event, reason });
        }
      }
    };
    const lanes = Array.from({ length: Math.min(concurrency, events.length) }, publishNext);
    await Promise.all(lanes);
    return summary;
  }

  /** Publishes one event; returns null on 202, or why the API rejected it. */
  private async publish(event: DemoEvent): Promise<string | null> {
    try {
      const { status, body } = await this.request('POST', '/v1/events', {
        id: event.id,
        event_class: event.eventClass,
        data: event.data,
      });
      return status === 202 ? null : `status ${status}: ${JSON.stringify(body)}`;
    } catch (error) {
      return `request failed: ${String(error)}`;
    }
  }
}
