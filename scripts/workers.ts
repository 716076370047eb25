// Starts N dispatch and M delivery worker processes and restarts any that
// exits unexpectedly, for hosts without a process manager:
//   npm run workers -- --dispatch 2 --delivery 4
// SIGTERM or SIGINT is passed on to every child, which drains and exits.
// The supervisor then exits 0, or 1 when a child did not exit 0. A second
// signal sends SIGKILL to every child and exits 130.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../shared/config.js';

const ENTRY_POINTS = {
  dispatch: fileURLToPath(new URL('../workers/dispatch/main.ts', import.meta.url)),
  delivery: fileURLToPath(new URL('../workers/delivery/main.ts', import.meta.url)),
};
const RESTART_DELAY_MS = 1_000;

function readCount(value: string | undefined, option: string): number {
  const count = Number(value ?? '1');
  if (value?.trim() === '' || !Number.isInteger(count) || count < 0 || count > 256) {
    console.error(`--${option} must be a whole number from 0 to 256, got "${value}"`);
    process.exit(2);
  }
  return count;
}

const USAGE =
  'usage: npm run workers -- [--dispatch N] [--delivery M]\n' +
  '  --dispatch N  dispatch worker processes to run (default 1)\n' +
  '  --delivery M  delivery worker processes to run (default 1)';

let values: { dispatch?: string; delivery?: string; help?: boolean };
try {
  ({ values } = parseArgs({
    options: {
      dispatch: { type: 'string' },
      delivery: { type: 'string' },
      help: { type: 'boolean' },
    },
  }));
} catch (error) {
  console.error(`${(error as Error).message}\n${USAGE}`);
  process.exit(2);
}
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
// A child with a bad setting exits 2 at once; restarting it every second
// would only repeat the message, so the supervisor checks first.
try {
  loadConfig();
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(`invalid configuration: ${error.message}`);
  process.exit(2);
}
const counts = {
  dispatch: readCount(values.dispatch, 'dispatch'),
  delivery: readCount(values.delivery, 'delivery'),
};

const children = new Set<ChildProcess>();
const restartTimers = new Set<NodeJS.Timeout>();
let stopping = false;
/** Becomes 1 when a child fails to stop cleanly, so the supervisor reports it. */
let exitCode = 0;

function log(message: string, fields: Record<string, unknown> = {}) {
  console.log(JSON.stringify({ time: new Date().toISOString(), role: 'supervisor', msg: message, ...fields }));
}

/**
 * Returns the environment of one child. With HEALTH_PORT set, children
 * would clash on one port, so each gets its own: HEALTH_PORT for dispatch
 * slot 0, then one more per slot, dispatch slots before delivery slots.
 */
function childEnvironment(kind: keyof typeof ENTRY_POINTS, slot: number): NodeJS.ProcessEnv {
  const base = loadConfig().healthPort;
  if (base === 0) return process.env;
  const index = kind === 'dispatch' ? slot : counts.dispatch + slot;
  return { ...process.env, HEALTH_PORT: String(base + index) };
}

function startChild(kind: keyof typeof ENTRY_POINTS, slot: number) {
  const child = spawn(process.execPath, ['--import', 'tsx', ENTRY_POINTS[kind]], {
    // The IPC channel closes when this supervisor dies in any way, and the
    // child then stops as on SIGTERM instead of running on unsupervised.
    stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
    env: childEnvironment(kind, slot),
    // A terminal's Ctrl-C signals the whole process group; a group of its
    // own lets each child get exactly one signal, from this supervisor.
    detached: true,
  });
  children.add(child);
  log('worker started', { kind, slot, pid: child.pid });
  child.on('exit', (code, signal) => {
    children.delete(child);
    if (stopping) {
      if (code !== 0) {
        exitCode = 1;
        log('worker did not stop cleanly', { kind, slot, pid: child.pid, code, signal });
      }
      if (children.size === 0) process.exit(exitCode);
      return;
    }
    if (code === 2) {
      log('worker exited with invalid configuration; not restarting', { kind, slot, code });
      return;
    }
    log('worker exited; restarting', { kind, slot, code, signal, restartInMs: RESTART_DELAY_MS });
    const timer = setTimeout(() => {
      restartTimers.delete(timer);
      startChild(kind, slot);
    }, RESTART_DELAY_MS);
    restartTimers.add(timer);
  });
}

for (const kind of ['dispatch', 'delivery'] as const) {
  for (let slot = 0; slot < counts[kind]; slot++) startChild(kind, slot);
}
if (children.size === 0) process.exit(0);

let signals = 0;
// SIGHUP arrives when the terminal closes; the children are in their own
// sessions and would not get it.
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
  process.on(signal, () => {
    signals++;
    stopping = true;
    // A worker waiting to be restarted stays stopped.
    for (const timer of restartTimers) clearTimeout(timer);
    restartTimers.clear();
    log('stopping workers', { signal, workers: children.size });
    for (const child of children) child.kill(signals > 1 ? 'SIGKILL' : 'SIGTERM');
    if (signals > 1) process.exit(130);
    if (children.size === 0) process.exit(exitCode);
  });
}
