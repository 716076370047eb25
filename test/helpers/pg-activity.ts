import type pg from 'pg';

/** One row of pg_stat_activity, reduced to what the tests check. */
export interface BackendSample {
  at: number;
  pid: number;
  state: string | null;
  /** Seconds since the backend's state last changed. */
  stateAgeSeconds: number;
}

/**
 * Samples the backends of one database and application_name every
 * `intervalMs` until `stop()`, through `pool`, which must not go through
 * the connections under test.
 */
export class BackendSampler {
  /** Every sample, one array of backends per tick. */
  readonly ticks: BackendSample[][] = [];
  /** Errors of the sampling query; a test should expect none. */
  readonly errors: unknown[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly pool: pg.Pool,
    private readonly database: string,
    private readonly applicationName: string,
    private readonly intervalMs = 200,
  ) {}

  start(): this {
    this.timer = setInterval(() => {
      if (this.running !== undefined) return;
      this.running = this.sample().finally(() => {
        this.running = undefined;
      });
    }, this.intervalMs);
    return this;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  /** Largest number of backends seen in one sample. */
  maxBackends(): number {
    return Math.max(0, ...this.ticks.map((tick) => tick.length));
  }

  /** Samples of backends that were `idle in transaction` for longer than `seconds`. */
  idleInTransactionOver(seconds: number): BackendSample[] {
    return this.ticks
      .flat()
      .filter((backend) => backend.state === 'idle in transaction' && backend.stateAgeSeconds > seconds);
  }

  private async sample(): Promise<void> {
    try {
      const { rows } = await this.pool.query<Omit<BackendSample, 'at'>>(
        `SELECT pid, state,
           coalesce(extract(epoch FROM now() - state_change), 0)::float8 AS "stateAgeSeconds"
         FROM pg_stat_activity
         WHERE datname = $1 AND application_name = $2`,
        [this.database, this.applicationName],
      );
      const at = Date.now();
      this.ticks.push(rows.map((row) => ({ at, ...row })));
    } catch (error) {
      this.errors.push(error);
    }
  }
}

/** Returns the database name of a connection URL. */
export function databaseName(url: string): string {
  return decodeURIComponent(new URL(url).pathname.slice(1));
}

/** Adds `application_name` to a connection URL; node-postgres lets it win over the code's name. */
export function withApplicationName(url: string, applicationName: string): string {
  const named = new URL(url);
  named.searchParams.set('application_name', applicationName);
  return named.toString();
}
