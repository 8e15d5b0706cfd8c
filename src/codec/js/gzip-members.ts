/**
 * JS twin: the framing check of gzip streams made of self-sized members (docs/FORMAT.md 2.1).
 * node:zlib inflates the members (it reads any multi-member gzip); this scanner only follows the
 * `S3` member lengths alongside, without copying data, so that a stream which ends after a member
 * lacking the last-member flag is refused as truncated, as the native reader refuses it. From the
 * first member without the field (gzip written by Node, `gzip`, older releases) it stops looking:
 * such streams carry no end marker beyond what zlib checks.
 */
const HEADER_LEN = 21;
const LAST = 1;
const MIN_MEMBER = HEADER_LEN + 2 + 8;
const MAX_MEMBER = 64 * 1024 * 1024;

/** The announced length and last flag of a member header, or null if it is not one of ours. */
function announced(h: Buffer): { total: number; last: boolean } | null {
  const ours =
    h[0] === 0x1f && h[1] === 0x8b && h[2] === 8 && h[3] === 0x04 &&
    h[10] === 9 && h[11] === 0 && h[12] === 0x53 && h[13] === 0x33 && h[14] === 5 && h[15] === 0 &&
    (h[20] & ~LAST) === 0;
  if (!ours) return null;
  const total = h.readUInt32LE(16);
  return total >= MIN_MEMBER && total <= MAX_MEMBER ? { total, last: (h[20] & LAST) !== 0 } : null;
}

export class GzipMemberScanner {
  private readonly header = Buffer.alloc(HEADER_LEN);
  private headerBytes = 0;
  /** Bytes of the current member still to pass. */
  private remaining = 0;
  private members = 0;
  private lastFlag = false;
  private foreign = false;

  /** Follows `piece` (the next bytes of the gzip stream). */
  scan(piece: Buffer): void {
    let at = 0;
    while (at < piece.length && !this.foreign) {
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, piece.length - at);
        this.remaining -= n;
        at += n;
        continue;
      }
      const n = Math.min(HEADER_LEN - this.headerBytes, piece.length - at);
      piece.copy(this.header, this.headerBytes, at, at + n);
      this.headerBytes += n;
      at += n;
      if (this.headerBytes < HEADER_LEN) break;
      const member = announced(this.header);
      if (member === null) {
        this.foreign = true;
        break;
      }
      this.members += 1;
      this.lastFlag = member.last;
      this.remaining = member.total - HEADER_LEN;
      this.headerBytes = 0;
    }
  }

  /** At the end of the stream: the message of a cut between members, or null. */
  truncation(): string | null {
    const atBoundary = this.remaining === 0 && this.headerBytes === 0;
    if (!this.foreign && this.members > 0 && atBoundary && !this.lastFlag) {
      return 'the stream ends after a member that is not its last (truncated between members)';
    }
    return null;
  }
}
