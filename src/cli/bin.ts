/** Entry point of the `s3db-backup` command (bin/s3db-backup.js runs its compiled form; `npm run cli` this file). */
import { run } from './run.js';

await run();
