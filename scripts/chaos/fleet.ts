import { setTimeout as delay } from 'node:timers/promises';
import type { SeededRandom } from './random.js';
import { WorkerProcess, type WorkerRole } from './worker-process.js';

/** Delay before a worker that exited is started again, in ms. */
const RESTART_DELAY_MS = 500;

/** Counters of what happened to the fleet's processes. */
export interface FleetStats {
  sigkills: number;
  sigterms: number;
  /** Processes that exited 0 after SIGTERM, including the final stop. */
  cleanStops: number;
  /** Processes that got SIGTERM and did not exit 0, each described. */
  uncleanStops: string[];
  /** Processes that exited without being sent a signal, each described. */
  unexpectedExits: string[];
  restarts: number;
  /** Log lines at level error (50) or above, per role. */
  errorLines: Record<WorkerRole, number>;
}

interface Slot {
  role: WorkerRole;
  index: number;
  worker: WorkerProcess;
  /** The signal this run sent to the current process, if any. */
  sent?: NodeJS.Signals;
  sentAt?: number;
}

/**
 * A fixed number of dispatch and delivery worker processes. A process that
 * exits is started again after RESTART_DELAY_MS until stop() is called, and
 * every exit is checked against the signal that the fleet sent.
 */
export class WorkerFleet {
  readonly stats: FleetStats = {
    sigkills: 0,
    sigterms: 0,
    cleanStops: 0,
    uncleanStops: [],
    unexpectedExits: [],
    restarts: 0,
    errorLines: { dispatch: 0, delivery: 0 },
  };
  private readonly slots: Slot[] = [];
  private readonly restartTimers = new Set<NodeJS.Timeout>();
  private stopping = false;

  constructor(
    private readonly counts: Record<WorkerRole, number>,
    private readonly environment: NodeJS.ProcessEnv,
    /** Receives every line that a worker writes, prefixed with its role and pid when not JSON. */
    private readonly writeLog: (text: string) => void = () => {},
  ) {}

  /** Starts every worker and waits until each has logged that it started. */
  async start(): Promise<void> {
    for (const role of ['dispatch', 'delivery'] as const) {
      for (let index = 0; index < this.counts[role]; index++) {
        const slot: Slot = { role, index, worker: this.spawn(role) };
        this.slots.push(slot);
        this.watch(slot);
      }
    }
    await Promise.all(this.slots.map((slot) => readyOrExit(slot.worker)));
  }

  /**
   * Sends `signal` to a random worker of `role` (any role when absent) that
   * has started and was not signalled yet. Returns a description of what it
   * did, or null when no worker qualified.
   */
  disrupt(signal: 'SIGKILL' | 'SIGTERM', random: SeededRandom, role?: WorkerRole): string | null {
    const candidates = this.slots.filter(
      (slot) =>
        (role === undefined || slot.role === role) &&
        slot.sent === undefined &&
        slot.worker.isRunning &&
        slot.worker.readyAt !== undefined,
    );
    if (candidates.length === 0) return null;
    const slot = random.pick(candidates);
    slot.sent = signal;
    slot.sentAt = performance.now();
    if (signal === 'SIGKILL') this.stats.sigkills++;
    else this.stats.sigterms++;
    slot.worker.signal(signal);
    return `${signal} ${slot.role} worker ${slot.index} (pid ${slot.worker.pid})`;
  }

  /** Stops every worker with SIGTERM, and SIGKILL after `timeoutMs`. Nothing restarts afterwards. */
  async stop(timeoutMs = 20_000): Promise<void> {
    this.stopping = true;
    for (const timer of this.restartTimers) clearTimeout(timer);
    this.restartTimers.clear();
    await Promise.all(
      this.slots.map(async (slot) => {
        if (!slot.worker.isRunning) return;
        // A process restarted just before the stop may not have installed
        // its SIGTERM handler yet, and would die by the signal instead of
        // shutting down, so wait until it has started (or exited), for at
        // most timeoutMs.
        await Promise.race([readyOrExit(slot.worker), delay(timeoutMs, undefined, { ref: false })]);
        if (!slot.worker.isRunning) return;
        if (slot.sent === undefined) {
          slot.sent = 'SIGTERM';
          slot.sentAt = performance.now();
        }
        await slot.worker.stop(timeoutMs);
      }),
    );
  }

  /** Sends SIGKILL to every worker at once, for an interrupted run. */
  killAll(): void {
    this.stopping = true;
    for (const timer of this.restartTimers) clearTimeout(timer);
    for (const slot of this.slots) slot.worker.killNow();
  }

  private spawn(role: WorkerRole): WorkerProcess {
    return new WorkerProcess(role, this.environment, (line, worker) => {
      if (typeof line === 'string') {
        this.writeLog(`${role} ${worker.pid}: ${line.trimEnd()}\n`);
        return;
      }
      if (typeof line.level === 'number' && line.level >= 50) this.stats.errorLines[role]++;
      this.writeLog(`${JSON.stringify(line)}\n`);
    });
  }

  private watch(slot: Slot): void {
    const worker = slot.worker;
    void worker.exited.then((status) => {
      const what = `${slot.role} worker ${slot.index} (pid ${worker.pid})`;
      const exit = status.signal ? `signal ${status.signal}` : `code ${status.code}`;
      if (slot.sent === 'SIGTERM') {
        const stopMs = Math.round(status.at - (slot.sentAt ?? status.at));
        if (status.code === 0) this.stats.cleanStops++;
        else this.stats.uncleanStops.push(`${what}: ${exit} ${stopMs} ms after SIGTERM`);
      } else if (slot.sent === undefined) {
        this.stats.unexpectedExits.push(`${what}: ${exit}`);
      }
      if (this.stopping) return;
      const timer = setTimeout(() => {
        this.restartTimers.delete(timer);
        if (this.stopping) return;
        slot.worker = this.spawn(slot.role);
        slot.sent = undefined;
        slot.sentAt = undefined;
        this.stats.restarts++;
        this.watch(slot);
      }, RESTART_DELAY_MS);
      this.restartTimers.add(timer);
    });
  }
}

/** Resolves when the worker is ready or has exited. */
async function readyOrExit(worker: WorkerProcess): Promise<void> {
  await Promise.race([worker.ready, worker.exited]);
}
