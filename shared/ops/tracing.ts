import { context, propagation, SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import type { Telemetry } from 'bullmq';
import { BullMQOtel } from 'bullmq-otel';
import type { Logger } from '../logger.js';

/** Name of the tracer and of BullMQ's spans. */
const TRACER_NAME = 'webhook-deliverator';

interface TracingState {
  provider: TracerProvider;
  telemetry: BullMQOtel;
}

// Kept on globalThis for the same reason as the metrics registry: one
// provider per process, however many copies of this module load.
const TRACING_KEY = Symbol.for('webhook-deliverator.tracing');

function state(): TracingState | undefined {
  return (globalThis as { [TRACING_KEY]?: TracingState })[TRACING_KEY];
}

/**
 * Starts OpenTelemetry tracing for this process when `endpoint` is set, so
 * that spans go in batches to that OTLP/HTTP traces URL. BullMQ then carries
 * the W3C trace context inside each job: from the producer to the dispatch
 * worker, and from there to the delivery worker and its HTTP attempt. With
 * an empty endpoint it does nothing, and the span helpers here only run
 * their work. A second call keeps the first provider.
 */
export function startTracing(options: { endpoint: string; serviceName: string; logger: Logger }): void {
  if (options.endpoint === '' || state() !== undefined) return;
  const provider = new TracerProvider({
    resource: resourceFromAttributes({
      'service.name': process.env.OTEL_SERVICE_NAME || options.serviceName,
    }),
    spanProcessors: [new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url: options.endpoint }) })],
  });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  const telemetry = new BullMQOtel({ tracerName: TRACER_NAME });
  (globalThis as { [TRACING_KEY]?: TracingState })[TRACING_KEY] = { provider, telemetry };
  options.logger.info({ endpoint: options.endpoint }, 'tracing started');
}

/** Sends the spans that are still buffered, for a process that is stopping. */
export async function flushTracing(): Promise<void> {
  await state()?.provider.forceFlush();
}

/**
 * Returns the `telemetry` option of BullMQ queues and workers: the
 * OpenTelemetry bridge while tracing runs, else undefined, which leaves
 * BullMQ's tracing off.
 */
export function queueTelemetry(): Telemetry | undefined {
  return state()?.telemetry as Telemetry | undefined;
}

/**
 * Runs `work` in a client span named `name` when tracing runs, and ends the
 * span with `describe`'s attributes; without tracing it only runs `work`.
 */
export async function withClientSpan<T>(
  name: string,
  attributes: Record<string, string | number>,
  work: () => Promise<T>,
  describe: (result: T) => { attributes: Record<string, string | number>; error?: string },
): Promise<T> {
  if (state() === undefined) return work();
  const tracer = trace.getTracer(TRACER_NAME);
  return tracer.startActiveSpan(name, { kind: SpanKind.CLIENT, attributes }, async (span: Span) => {
    try {
      const result = await work();
      const outcome = describe(result);
      span.setAttributes(outcome.attributes);
      if (outcome.error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.error });
      return result;
    } catch (error) {
      span.recordException(error as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
      throw error;
    } finally {
      span.end();
    }
  });
}
