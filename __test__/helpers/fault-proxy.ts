/**
 * A small HTTP proxy on 127.0.0.1 that forwards to the real S3 server (Ceph RGW) and injects faults
 * at a set rate: 500 InternalError, 503 ServiceUnavailable, 503 SlowDown (the S3 XML error bodies),
 * connection resets (before forwarding, after the server answered so the response is lost, and
 * in the middle of the response body), and a well-formed response whose Content-Length was cut to
 * half (what a misbehaving middlebox does: the client sees a complete, shorter body).
 *
 * This is a FAKE on purpose, and the only one in the S3 tests: a real server cannot be made to
 * produce these faults on demand. Everything else (the data, the multipart uploads, the answers
 * that are not injected faults) comes from the real server behind it.
 *
 * It can also record requests (method, URL, headers) so a test can check what the client sent
 * (e.g. SSE headers, a RestoreObject call), and `intercept` can answer chosen requests itself, for
 * answers RGW never gives (e.g. InvalidObjectState for an archived object); `rewrite` changes the
 * server's own answer (e.g. a listing's StorageClass, which RGW shows as STANDARD).
 *
 * Invariants: the Host header and the body are forwarded unchanged, so SigV4 signatures still
 * verify at the server; faults are drawn from a seeded PRNG, so a run is reproducible.
 */
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { mulberry32 } from '../../benches/corpus.js';

export type FaultKind =
  | 'internal-error'
  | 'service-unavailable'
  | 'slowdown'
  | 'reset-before'
  | 'reset-after'
  | 'reset-mid-body'
  | 'stall-mid-body'
  | 'short-content-length';

/** The faults drawn by default: what a network and a loaded server do ('short-content-length' and 'stall-mid-body' only when asked). */
export const ALL_FAULTS: readonly FaultKind[] = [
  'internal-error',
  'service-unavailable',
  'slowdown',
  'reset-before',
  'reset-after',
  'reset-mid-body',
];

export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

export interface InterceptAnswer {
  status: number;
  headers?: Record<string, string>;
  body?: string;
}

export interface FaultProxyOptions {
  /** Where to forward, e.g. "http://127.0.0.1:7480". */
  target: string;
  /** Probability (0..1) that a request gets a fault. Default 0. */
  rate?: number;
  /** Which faults to draw from (uniformly). Default: all. */
  faults?: readonly FaultKind[];
  /** PRNG seed. Default 1. */
  seed?: number;
  /** Only requests for which this returns true can get a fault. Default: all. */
  eligible?: (req: RecordedRequest) => boolean;
  /** Answer a request directly (not forwarded) when this returns an answer. */
  intercept?: (req: RecordedRequest) => InterceptAnswer | undefined;
  /** The server's answer to a request, read whole, given back changed when this returns a body (an answer RGW never gives, e.g. a listing showing an archive storage class). */
  rewrite?: (req: RecordedRequest, body: string) => string | undefined;
  /** Keep every request in `requests`. Default false. */
  record?: boolean;
  /** Hold every request this long before handling it: a distant server's round trip (benchmarks). Default 0. */
  latencyMs?: number;
}

export interface FaultProxy {
  /** "http://127.0.0.1:<port>" */
  readonly url: string;
  readonly requests: RecordedRequest[];
  /** How many faults of each kind were injected so far. */
  readonly injected: Record<FaultKind, number>;
  /** Total requests seen. */
  readonly total: () => number;
  setRate(rate: number): void;
  close(): Promise<void>;
}

function s3ErrorXml(code: string, message: string): string {
  return (
    '<?xml version="1.0" encoding="UTF-8"?>' +
    `<Error><Code>${code}</Code><Message>${message}</Message><RequestId>fault-proxy</RequestId></Error>`
  );
}

const ERROR_ANSWERS: Record<'internal-error' | 'service-unavailable' | 'slowdown', [number, string, string]> = {
  'internal-error': [500, 'InternalError', 'We encountered an internal error. Please try again.'],
  'service-unavailable': [503, 'ServiceUnavailable', 'Please reduce your request rate.'],
  slowdown: [503, 'SlowDown', 'Please reduce your request rate.'],
};

function answer(req: IncomingMessage, res: ServerResponse, a: InterceptAnswer): void {
  const body = req.method === 'HEAD' ? '' : (a.body ?? '');
  req.resume();
  req.on('end', () => {
    res.writeHead(a.status, {
      'content-type': 'application/xml',
      'content-length': String(Buffer.byteLength(body)),
      ...a.headers,
    });
    res.end(body);
  });
}

export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const target = new URL(options.target);
  const random = mulberry32(options.seed ?? 1);
  const faults = options.faults ?? ALL_FAULTS;
  let rate = options.rate ?? 0;
  let total = 0;
  const requests: RecordedRequest[] = [];
  const injected = Object.fromEntries([...ALL_FAULTS, 'short-content-length', 'stall-mid-body'].map((k) => [k, 0])) as Record<FaultKind, number>;
  const sockets = new Set<Socket>();
  const upstreamAgent = new http.Agent({ keepAlive: true, maxSockets: 64 });

  const server = http.createServer((req, res) => {
    if (options.latencyMs) setTimeout(() => handle(req, res), options.latencyMs);
    else handle(req, res);
  });
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    total += 1;
    const rec: RecordedRequest = { method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers };
    if (options.record) requests.push(rec);

    const direct = options.intercept?.(rec);
    if (direct) {
      answer(req, res, direct);
      return;
    }

    let fault: FaultKind | undefined;
    if (rate > 0 && (options.eligible?.(rec) ?? true) && random() < rate) {
      fault = faults[Math.floor(random() * faults.length)];
      if (fault) injected[fault] += 1;
    }

    if (fault === 'reset-before') {
      req.socket.destroy();
      return;
    }
    if (fault === 'internal-error' || fault === 'service-unavailable' || fault === 'slowdown') {
      const [status, code, message] = ERROR_ANSWERS[fault];
      answer(req, res, { status, body: s3ErrorXml(code, message) });
      return;
    }

    const upstream = http.request(
      {
        protocol: target.protocol,
        hostname: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: req.headers, // Host unchanged: the SigV4 signature covers it
        agent: upstreamAgent,
      },
      (up) => {
        if (fault === 'reset-after') {
          // the server did the work; the client never hears about it
          up.resume();
          up.on('end', () => req.socket.destroy());
          return;
        }
        if (fault === 'short-content-length') {
          // the first half of the body, framed as if it were all of it; the rest is dropped
          const cut = Math.floor(Number(up.headers['content-length'] ?? 0) / 2);
          res.writeHead(up.statusCode ?? 502, { ...up.headers, 'content-length': String(cut) });
          let sent = 0;
          up.on('data', (chunk: Buffer) => {
            const room = cut - sent;
            if (room > 0) res.write(chunk.subarray(0, room));
            sent += Math.max(0, Math.min(room, chunk.length));
          });
          up.on('end', () => res.end());
          return;
        }
        if (options.rewrite) {
          const chunks: Buffer[] = [];
          up.on('data', (chunk: Buffer) => chunks.push(chunk));
          up.on('end', () => {
            const body = Buffer.concat(chunks);
            const changed = options.rewrite!(rec, body.toString('utf8'));
            const headers = { ...up.headers };
            delete headers['transfer-encoding'];
            const out = changed === undefined ? body : Buffer.from(changed);
            res.writeHead(up.statusCode ?? 502, { ...headers, 'content-length': String(out.length) });
            res.end(out);
          });
          return;
        }
        res.writeHead(up.statusCode ?? 502, up.rawHeaders);
        if (fault === 'reset-mid-body' || fault === 'stall-mid-body') {
          // half the body, then the connection is reset, or goes silent and stays open (a stall:
          // only the client's timeout ends it; the rest of the upstream body is read and dropped)
          const length = Number(up.headers['content-length'] ?? 0);
          const cut = () => {
            if (fault === 'stall-mid-body') return;
            up.destroy();
            res.socket?.destroy();
          };
          let sent = 0;
          up.on('data', (chunk: Buffer) => {
            if (sent >= length / 2) return;
            const room = Math.max(0, Math.floor(length / 2) - sent);
            res.write(chunk.subarray(0, room));
            sent += Math.min(room, chunk.length);
            if (sent >= length / 2) cut();
          });
          up.on('end', () => (fault === 'reset-mid-body' ? res.socket?.destroy() : undefined));
          if (length === 0) cut();
          return;
        }
        up.pipe(res);
      },
    );
    upstream.on('error', () => res.socket?.destroy());
    req.on('error', () => upstream.destroy());
    req.pipe(upstream);
  };
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    injected,
    total: () => total,
    setRate(r: number) {
      rate = r;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      upstreamAgent.destroy();
    },
  };
}
