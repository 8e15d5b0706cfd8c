/** A plugin logger that keeps the messages of its warnings in `into` and drops everything else. */
export function warnInto(into: string[]): { warn(obj: unknown, msg: string): void; error(): void; info(): void } {
  return { warn: (_obj: unknown, msg: string) => void into.push(msg), error() {}, info() {} };
}
