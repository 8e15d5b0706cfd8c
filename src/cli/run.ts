/**
 * The process around the CLI: argv and env in, exit code out, and Ctrl-C. The first Ctrl-C
 * during `backup` stops it cleanly (the backup is aborted: it deletes what it wrote and the lease
 * is released); otherwise, or at the second, the process ends at once with 130 and says what to
 * do (a restore is idempotent: run it again; a backup's leftovers go with the next backup), after
 * how far the progress shown had got.
 * SIGTERM (kill, timeout, systemd and docker stop) and SIGHUP do the same, ending with 143 and 129
 * (s3db.js registers handlers of its own for them, so Node's default exit would never come).
 */
import { main } from './main.js';
import { ProgressDisplay } from './progress.js';

const INTERRUPTED: Record<string, string> = {
  restore: 'restore interrupted: the database may be partly restored. Run the same command again (a restore is idempotent).',
  backup: 'backup interrupted: it was not committed and is not listed; the next backup removes what it wrote.',
};
const FILE_TEMPS = 'Into a file:// database: once no restore runs, remove the *.tmp.* files interrupted writes left beside its records (README runbook, step 8).';

export async function run(): Promise<void> {
  // The AWS SDK's notice that its releases after January 2027 need Node 22 (nine lines on stderr
  // at every command under Node 20) is not news at 3 AM; setting the variable shows it again
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const argv = process.argv.slice(2);
  const stop = new AbortController();
  const progress = new ProgressDisplay(process.stderr);
  const command = argv.find((a) => !a.startsWith('-')) ?? '';
  const onSignal = (name: string, exitCode: number) => () => {
    if (command === 'backup' && !stop.signal.aborted) {
      process.stderr.write(`\nstopping the backup cleanly (${name} again to quit at once)...\n`);
      stop.abort(new Error(`interrupted (${name})`));
      return;
    }
    progress.interrupted();
    process.stderr.write(`\n${INTERRUPTED[command] ?? 'interrupted.'}\n`);
    // s3db.js's file client writes through temp files, which a kill leaves and nothing lists
    if (command === 'restore' && argv.some((a) => a.includes('file://'))) process.stderr.write(`${FILE_TEMPS}\n`);
    process.exit(exitCode);
  };
  process.on('SIGINT', onSignal('Ctrl-C', 130));
  process.on('SIGTERM', onSignal('SIGTERM', 143));
  process.on('SIGHUP', onSignal('SIGHUP', 129));
  const code = await main(argv, process.env, { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin }, stop.signal, progress);
  // exit at once (a client's sockets or timers must not keep a finished command alive), once what
  // was written has been handed over
  await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
  await new Promise<void>((resolve) => process.stderr.write('', () => resolve()));
  process.exit(code);
}
