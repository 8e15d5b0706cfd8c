/**
 * A counted gate: closed while at least one holder holds it, open otherwise. `passed()` resolves
 * once it is open (at once when it is).
 *
 * Invariant: every hold() is matched by exactly one call of the release function it returns
 * (a second call does nothing), so the gate cannot stay closed after its holders are done.
 */
export class Gate {
  private holders = 0;
  private opened: { promise: Promise<void>; resolve: () => void } | null = null;

  get closed(): boolean {
    return this.holders > 0;
  }

  hold(): () => void {
    if (this.holders++ === 0) {
      let resolve: () => void = () => undefined;
      const promise = new Promise<void>((r) => (resolve = r));
      this.opened = { promise, resolve };
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--this.holders === 0) {
        this.opened?.resolve();
        this.opened = null;
      }
    };
  }

  async passed(): Promise<void> {
    while (this.opened) await this.opened.promise;
  }
}
