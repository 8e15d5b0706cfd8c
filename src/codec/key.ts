/**
 * KeyHandle: an opaque holder of a 32-byte master key. The material lives in a module-private
 * WeakMap, so a handle prints, inspects and serialises as `KeyHandle { keyCheck }` only. The key
 * check is HMAC-SHA256(master, "s3db-backup/v1/key-check")[0..16] (FORMAT.md 2.3).
 * Invariant: nothing outside src/codec reads the material; keyMaterial() is internal.
 */
import { createHmac } from 'node:crypto';
import { inspect } from 'node:util';
import { optionError } from '../errors.js';
import { INFO_KEY_CHECK, KEY_CHECK_LENGTH, KEY_LENGTH } from './format.js';

const material = new WeakMap<KeyHandle, Buffer>();

export class KeyHandle {
  /** Hex key check (16 bytes): identifies the key without revealing it. */
  readonly keyCheck: string;

  private constructor(raw: Buffer) {
    material.set(this, raw);
    this.keyCheck = computeKeyCheck(raw).toString('hex');
    Object.freeze(this);
  }

  /** @internal Use keyFromBytes(). */
  static fromOwnedBytes(raw: Buffer): KeyHandle {
    return new KeyHandle(raw);
  }

  toJSON(): { keyCheck: string } {
    return { keyCheck: this.keyCheck };
  }

  toString(): string {
    return `KeyHandle(${this.keyCheck})`;
  }

  [inspect.custom](): string {
    return `KeyHandle { keyCheck: '${this.keyCheck}' }`;
  }
}

/** key_check of FORMAT.md 2.3. */
export function computeKeyCheck(master: Buffer): Buffer {
  return createHmac('sha256', master).update(INFO_KEY_CHECK, 'utf8').digest().subarray(0, KEY_CHECK_LENGTH);
}

/** Wraps a raw 32-byte master key (copied; the caller may wipe its buffer afterwards). */
export function keyFromBytes(raw: Buffer | Uint8Array): KeyHandle {
  if (!(raw instanceof Uint8Array)) throw optionError('key', 'must be a KeyHandle or a 32-byte Buffer/Uint8Array');
  if (raw.length !== KEY_LENGTH) {
    throw optionError('key', `a raw key must be exactly ${KEY_LENGTH} bytes, got ${raw.length}`, 'Use createKeyFile() to derive one from a passphrase');
  }
  return KeyHandle.fromOwnedBytes(Buffer.from(raw));
}

export function isKeyHandle(value: unknown): value is KeyHandle {
  return value instanceof KeyHandle && material.has(value);
}

/** @internal The master key bytes of a handle. Never log or return them across the public API. */
export function keyMaterial(handle: KeyHandle): Buffer {
  const raw = material.get(handle);
  if (raw === undefined) throw optionError('key', 'is not a KeyHandle created by s3db-backup/codec');
  return raw;
}
