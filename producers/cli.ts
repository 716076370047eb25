// Entry point of the `webhooks` command; bin/webhooks.mjs loads it through
// tsx. Run `webhooks --help` for the commands.
import { runCli } from './cli/run-cli.js';

/** Time after which the process exits even if a connection is still open. */
const EXIT_WATCHDOG_MS = 5_000;

const status = await runCli(process.argv.slice(2), {
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
});
process.exitCode = status;

// runCli's only connections are fetch's. They do not keep the process
// alive once idle, so it normally exits right away, as cli.test.ts checks.
// Should a handle stay open anyway, a cron job must not hang:
// the unreferenced timer exits with the same status without keeping the
// process alive by itself.
setTimeout(() => {
  process.stderr.write(
    `warning: connections still open ${EXIT_WATCHDOG_MS} ms after the command finished; exiting\n`,
  );
  process.exit(status);
}, EXIT_WATCHDOG_MS).unref();
