/**
 * Hiding credentials in what the plugin shows: messages, events, hooks, `plugin.options` and
 * `plugin.config`. Invariant: what these return never holds a secret the input held in a known
 * place (a connection string's user-info or credential query parameters, a credential-named
 * property); everything else is kept as it is, functions and class instances included.
 */

/**
 * Query (or fragment) parameters that carry a secret: the names S3, OAuth and webhook URLs use
 * (access_token, api_key, X-Amz-Signature, X-Amz-Credential, sig: review-29 F4), and any name
 * ending in _token, -key, _secret...; not a name that merely contains such letters (design=,
 * monkey=, sortKey=: review-29b G3).
 */
const SECRET_PARAM = /^(?:token|secret|password|passphrase|key|sig|signature|credential|apikey|secretaccesskey|accesskeyid|sessiontoken|accesstoken|refreshtoken|x-amz-signature|x-amz-credential|x-amz-security-token|.*[_-](?:token|key|secret|signature|password))$/i;

/**
 * Text with the credentials of every connection string in it hidden: everything from `//` to the
 * last `@` of the same whitespace-free run (a secret key may hold `/`, `+` or even `@`, unencoded),
 * and credential query parameters (`?secretAccessKey=...`).
 */
export function redacted(text: string): string {
  return text.replace(/\/\/\S*@/g, '//***@').replace(/([?&#])([^=&#\s]+)=([^&#\s]*)/g, (all, sep: string, name: string) => (SECRET_PARAM.test(name) ? `${sep}${name}=***` : all));
}

/**
 * A restore destination as given, safe to show: `redacted`, and besides everything between its
 * scheme (if any) and its last `@` hidden, whatever it holds (spaces, no `//`: `s3:AK:SK@bucket`,
 * `AK:SK@bucket`), since the whole value is one connection string.
 */
export function redactedTarget(destination: string): string {
  const at = destination.lastIndexOf('@');
  if (at < 0) return redacted(destination);
  // a scheme: lowercase, followed by '/' or one s3db.js knows (`AKID:SECRET@bucket` has none)
  const scheme = /^(?:[a-z][a-z0-9+.-]*:\/+|(?:s3|memory|file|https?):)/.exec(destination)?.[0] ?? '';
  return redacted(`${scheme}***${destination.slice(at)}`);
}

/** Properties whose value is a credential wherever they appear in options (`key`: encryption's raw key). */
const CREDENTIAL_KEYS: ReadonlySet<string> = new Set(['secretAccessKey', 'sessionToken', 'password', 'passphrase', 'secret', 'token', 'key']);

/**
 * A copy of `value` in which every property named in `names`, at any depth, holds `replacement`
 * (when it held something) and every other string is passed through `text`. Only plain objects and
 * arrays are copied: class instances (an S3Client, a Database) and functions (hooks) are kept as
 * they are.
 */
export function replaceNamed<T>(value: T, names: { has(name: string): boolean }, replacement: string, text: (s: string) => string = (s) => s): T {
  if (typeof value === 'string') return text(value) as T;
  if (Array.isArray(value)) return value.map((v: unknown) => replaceNamed(v, names, replacement, text)) as T;
  if (value === null || typeof value !== 'object') return value;
  const proto = Object.getPrototypeOf(value) as object | null;
  if (proto !== Object.prototype && proto !== null) return value;
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [k, names.has(k) && v !== undefined && v !== null ? replacement : replaceNamed(v, names, replacement, text)]),
  ) as T;
}

/**
 * Names of credentials in data an application hands over (a trigger's event context): not `key`
 * nor `token` alone, which name an object key or a page token there as often as a secret
 * (review-29 F3); the usual names of API keys and tokens instead.
 */
const PAYLOAD_CREDENTIAL_KEYS = {
  // in any case, camelCase or snake_case: Password, SecretAccessKey, aws_secret_access_key, secretKey (review-29b)
  has: (name: string) => /^(?:aws_?)?(?:secret(?:_?access)?(?:_?key)?|session_?token|password|passphrase|api_?key|access_?token|refresh_?token|auth_?token|authorization|private_?key|client_?secret)$/i.test(name),
};

/**
 * An application's data as it would be stored (JSON: a URL, a Date, anything with toJSON becomes
 * what JSON.stringify makes of it, so a URL's credentials are seen), with credential-named
 * properties '[redacted]' and connection strings' credentials `redacted`.
 */
export function redactPayload(value: unknown): unknown {
  if (value === undefined) return undefined;
  return replaceNamed(JSON.parse(JSON.stringify(value)) as unknown, PAYLOAD_CREDENTIAL_KEYS, '[redacted]', redacted);
}

/** Options as given, with every credential-named property '[redacted]' and connection strings in strings `redacted`. */
export function redactCredentials<T>(value: T): T {
  return replaceNamed(value, CREDENTIAL_KEYS, '[redacted]', redacted);
}
