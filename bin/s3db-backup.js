#!/usr/bin/env node
// The installed `s3db-backup` command: the compiled CLI (src/cli/bin.ts -> dist/cli/bin.js).
// In a clone of the repository, `npm run cli -- <command>` runs it from source (no build needed).
import '../dist/cli/bin.js';
