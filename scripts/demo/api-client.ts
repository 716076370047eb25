import { ApiError, type Client } from '../../producers/api/contract/client.js';
import type { DemoEvent } from './examples.js';

/** The outcome of publishing every demo event through the API. */
export interface PublishSummary {
  accepted: number;
  /** Events the API did not accept, with the status or error of each. */
  rejected: { event: DemoEvent; reason: string }[];
}

/** Publishes one event with the typed client; returns null when the API accepts it, or why not. */
async function publish(client: Client, event: DemoEvent): Promise<string | null> {
  try {
    await client.publishEvent({
      body: { id: event.id, event_class: event.eventClass, data: event.data },
    });
    return null;
  } catch (error) {
    if (error instanceof ApiError) return `status ${error.status} ${error.code}: ${error.message}`;
    return `request failed: ${String(error)}`;
  }
}

/**
 * Publishes every event through POST /v1/events with at most `concurrency`
 * requests in flight, and calls `onAccepted` after each 202.
 */
export async function publishAll(
  client: Client,
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
      const reason = await publish(client, event);
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
