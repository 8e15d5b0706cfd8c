/**
 * s3db.js `secret` attributes as this package meets them outside s3db's own storage.
 *
 * s3db stores secret attributes (every type whose name holds "secret": secret, secretAny,
 * secretNumber, ...) encrypted with the database's passphrase, but its resource API hands them
 * out decrypted. Records read through that API (logical records, a trigger's payload such as a
 * deleted record) therefore hold them in cleartext.
 * Invariant: nothing this package writes unencrypted holds a value read through the resource API
 * under a secret attribute's name (logical.ts refuses, redactSecrets replaces).
 */
import { replaceNamed } from '../redact.js';
import type { DatabaseLike } from './s3db.js';

/** Paths (`token`, `auth.key`) of the attributes whose rule is one of s3db.js's secret types. */
export function secretPaths(attributes: Record<string, unknown>, prefix: string): string[] {
  const out: string[] = [];
  for (const [name, rule] of Object.entries(attributes)) {
    if (name.startsWith('$$')) continue;
    const type = typeof rule === 'string' ? rule : rule && typeof rule === 'object' && typeof (rule as { type?: unknown }).type === 'string' ? (rule as { type: string }).type : null;
    if (type !== null && /secret/i.test(type.split('|')[0]!)) out.push(prefix + name);
    else if (type === null && rule && typeof rule === 'object') out.push(...secretPaths(rule as Record<string, unknown>, `${prefix}${name}.`));
  }
  return out;
}

/** The names (last path segment) of every secret attribute of every resource `db` has loaded. */
export function secretNames(db: DatabaseLike): Set<string> {
  const names = new Set<string>();
  for (const resource of Object.values(db.resources)) {
    const attributes = (resource as { attributes?: Record<string, unknown> } | undefined)?.attributes;
    if (attributes && typeof attributes === 'object') for (const p of secretPaths(attributes, '')) names.add(p.split('.').at(-1)!);
  }
  return names;
}

/**
 * `value` (JSON data) with the value of every property named in `names`, at any depth, replaced
 * by "[secret]". Conservative: a property of that name is redacted wherever it is, secret or not.
 */
export function redactSecrets(value: unknown, names: ReadonlySet<string>): unknown {
  return names.size === 0 ? value : replaceNamed(value, names, '[secret]');
}
