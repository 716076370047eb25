import { isConnectionError } from './db/connection-errors.js';

/**
 * Groups calls that arrive while a batch is being written into the next
 * batch, so that N concurrent callers cost about one round trip instead of
 * N. A lone caller is flushed on the next turn of the event loop, so batching
 * adds no wait when the system is idle.
 */
export class Batcher<Input, Output> {
  private pending: { input: Input; resolve: (value: Output) => void; reject: (error: unknown) => void }[] = [];
  private inFlight = 0;
  private scheduled = false;

  constructor(
    /** Writes one batch and returns one output per input, in input order. */
    private readonly flush: (inputs: Input[]) => Promise<Output[]>,
    private readonly options: { maxBatch: number; maxInFlight: number },
  ) {}

  run(input: Input): Promise<Output> {
    return new Promise<Output>((resolve, reject) => {
      this.pending.push({ input, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.pending.length === 0) return;
    if (this.inFlight >= this.options.maxInFlight) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.startBatch();
    });
  }

  private startBatch(): void {
    const batch = this.pending.splice(0, this.options.maxBatch);
    if (batch.length === 0) return;
    this.inFlight++;
    this.writeWithIsolation(batch.map((entry) => entry.input))
      .then((outputs) => {
        batch.forEach((entry, index) => {
          const output = outputs[index]!;
          if (output instanceof BatchItemError) entry.reject(output.cause);
          else entry.resolve(output as Output);
        });
      })
      .finally(() => {
        this.inFlight--;
        this.schedule();
      });
    this.schedule();
  }

  /**
   * Writes a batch; when it fails, writes each input alone, so that one bad
   * input fails only its own caller instead of everyone batched with it.
   * A lost or unreachable database fails every input alike. That error goes
   * to every caller at once, because writing each input alone would only
   * cost one more connection attempt per input.
   */
  private async writeWithIsolation(inputs: Input[]): Promise<(Output | BatchItemError)[]> {
    try {
      return await this.flush(inputs);
    } catch (error) {
      if (inputs.length === 1 || isConnectionError(error)) {
        return inputs.map(() => new BatchItemError(error));
      }
      return Promise.all(
        inputs.map((input) =>
          this.flush([input]).then(
            (outputs) => outputs[0]!,
            (itemError: unknown) => new BatchItemError(itemError),
          ),
        ),
      );
    }
  }
}

class BatchItemError {
  constructor(readonly cause: unknown) {}
}
