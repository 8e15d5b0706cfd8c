/**
 * Builds the DestinationSet a plugin writes to from its normalized options. Each destination
 * validates its own config in its constructor, so a bad option fails when the plugin is created.
 */
import { FilesystemDestination } from './filesystem.js';
import { S3Destination, type S3DestinationConfig } from './s3.js';
import { DestinationSet, type Strategy } from './set.js';
import type { Destination } from './types.js';

export interface DestinationSpec {
  driver: 'filesystem' | 's3';
  config?: Record<string, unknown>;
}

export function createDestination(spec: DestinationSpec): Destination {
  if (spec.driver === 's3') return new S3Destination((spec.config ?? {}) as unknown as S3DestinationConfig);
  return new FilesystemDestination({ directory: spec.config?.directory as string | undefined });
}

export function createDestinationSet(specs: DestinationSpec[], strategy: Strategy): DestinationSet {
  return new DestinationSet(specs.map(createDestination), strategy);
}

export { DestinationSet, FilesystemDestination, S3Destination };
export type { Destination, Strategy };
