/**
 * Builds the DestinationSet a plugin writes to from its normalized options. Each destination
 * validates its own config in its constructor, so a bad option fails when the plugin is created.
 */
import { optionError } from '../errors.js';
import { FilesystemDestination, type FilesystemDestinationConfig } from './filesystem.js';
import { S3Destination, type S3DestinationConfig } from './s3.js';
import { DestinationSet, type Strategy } from './set.js';
import type { Destination } from './types.js';

export interface DestinationSpec {
  driver: 'filesystem' | 's3';
  config?: Record<string, unknown>;
}

const FILESYSTEM_KEYS = ['directory', 'pathTemplate', 'fsync'];

/** `pathTemplate` is the plugin's (parts have one path everywhere); the rest is the destination's. */
export function createDestination(spec: DestinationSpec): Destination {
  const { pathTemplate: _template, ...config } = spec.config ?? {};
  if (spec.driver === 's3') return new S3Destination(config as S3DestinationConfig);
  for (const key of Object.keys(config)) {
    if (!FILESYSTEM_KEYS.includes(key)) throw optionError(`config.${key}`, 'is not a filesystem destination option', `Known: ${FILESYSTEM_KEYS.join(', ')}`);
  }
  return new FilesystemDestination(config as FilesystemDestinationConfig);
}

export function createDestinationSet(specs: DestinationSpec[], strategy: Strategy): DestinationSet {
  return new DestinationSet(specs.map(createDestination), strategy);
}

export { DestinationSet, FilesystemDestination, S3Destination };
export type { Destination, Strategy };
