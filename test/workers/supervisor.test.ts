// `npm run workers`: the supervisor that runs N dispatch and M delivery
// processes, restarts those that die, and stops them all on SIGTERM.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTestEnv, waitFor, type TestEnv } from '../helpers/test-env.js';
import { workerEnvironment } from '../helpers/worker-processes.js';

const SUPERVISOR = fileURLToPath(new URL('../../scripts/workers.ts', import.meta.url));

type LogLine = Record<string, unknown>;

let env: TestEnv;
let supervisor: ChildProcess;
let exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
const lines: LogLine[] = [];
const childPids = new Set<number>();

beforeAll(async () => {
  env = await createTestEnv();
  supervisor = spawn(
    process.execPath,
    ['--import', 'tsx', SUPERVISOR, '--dispatch', '1', '--delivery', '1'],
    { env: workerEnvironment(env, { SHUTDOWN_GRACE_MS: '5000' }), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  exited = new Promise((resolve) => {
    supervisor.on('exit', (code, signal) => resolve({ code, signal }));
  });
  let rest = '';
  supervisor.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    const parts = (rest + chunk).split('\n');
    rest = parts.pop() ?? '';
    for (const text of parts) {
      if (!text.startsWith('{')) continue;
      const line = JSON.parse(text) as LogLine;
      lines.push(line);
      if (line.msg === 'worker started' && typeof line.pid === 'number') childPids.add(line.pid);
    }
  });
  await waitFor(() => started('dispatch').length === 1 && started('delivery').length === 1, {
    timeoutMs: 30_000,
    message: 'both workers to start',
  });
});

afterAll(async () => {
  supervisor?.kill('SIGKILL');
  for (const pid of childPids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  await env?.dispose();
});

/** Lines in which a worker process of `role` logged that it started. */
function started(role: 'dispatch' | 'delivery'): LogLine[] {
  return lines.filter((line) => line.role === role && line.msg === `${role} worker started`);
}

/** Pid of the latest worker process of `kind` that the supervisor started. */
function latestPid(kind: 'dispatch' | 'delivery'): number {
  const starts = lines.filter((line) => line.role === 'supervisor' && line.msg === 'worker started' && line.kind === kind);
  return starts[starts.length - 1]!.pid as number;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('workers supervisor', () => {
  test('restarts killed worker', async () => {
    const killed = latestPid('delivery');
    process.kill(killed, 'SIGKILL');
    await waitFor(() => started('delivery').length === 2, {
      timeoutMs: 30_000,
      message: 'the delivery worker to be restarted',
    });
    const restart = lines.find(
      (line) => line.msg === 'worker exited; restarting' && line.kind === 'delivery',
    );
    expect(restart?.signal).toBe('SIGKILL');
    expect(latestPid('delivery')).not.toBe(killed);
    expect(isAlive(latestPid('delivery'))).toBe(true);
  });

  test('SIGTERM during restart delay', async () => {
    // The dispatch worker dies, and the supervisor is stopped before the
    // restart delay (1 s) has passed: nothing may start again.
    process.kill(latestPid('dispatch'), 'SIGKILL');
    await waitFor(
      () => lines.some((line) => line.msg === 'worker exited; restarting' && line.kind === 'dispatch'),
      { message: 'the supervisor to see the dispatch worker exit' },
    );
    supervisor.kill('SIGTERM');
    const status = await exited;
    expect(status).toEqual({ code: 0, signal: null });
    expect(started('dispatch')).toHaveLength(1);
    const stopIndex = lines.findIndex((line) => line.msg === 'stopping workers');
    expect(stopIndex).toBeGreaterThan(-1);
    expect(lines.slice(stopIndex).filter((line) => line.msg === 'worker started')).toEqual([]);
    await waitFor(() => [...childPids].every((pid) => !isAlive(pid)), {
      timeoutMs: 10_000,
      message: 'every worker process to exit',
    });
  });
});
