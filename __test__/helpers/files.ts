/**
 * What a test sees of a destination directory: every file under it, as sorted '/'-separated paths
 * relative to it ([] when the directory does not exist).
 */
import { readdir } from 'node:fs/promises';
import * as path from 'node:path';

export async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)).split(path.sep).join('/'))
    .sort();
}
