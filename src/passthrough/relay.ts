// GETs (blob downloads above all) from a plain-http upstream, relayed socket to socket: the response
// head is parsed here, and the body goes from the upstream socket to the client through a
// few reused buffers, past Node's HTTP client, which would copy every chunk into a fresh
// buffer that V8 frees late. That halves the CPU and the peak memory of a download
// (docs/performance.md). The guards are those of the proxy: back-pressure both ways, the
// upstream cancelled when the client leaves, a body cut short ends the client's response,
// idle timeouts, Location rewriting, keep-alive. Every other request goes through the proxy.
import type { IncomingMessage, ServerResponse } from 'node:http';
import net from 'node:net';
import { HOP_BY_HOP } from '../registry/hop-by-hop.js';
import { release } from './release-written.js';
import { type BodyFraming, type ResponseHead, ChunkedDecoder, HeadParser, framingOf } from './relay-http.js';

export type { ResponseHead };

export interface RelayOptions {
  upstream: URL;
  timeoutMs: number;
  /** Downloads relayed at once (each holds one upstream connection); the rest wait their turn. */
  maxConnections: number;
  /**
   * Called with the response head before it goes to the client (Location rewriting, timing).
   * 'again': the caller sends the request again itself (a 401 to stale credentials); this
   * answer is dropped with its connection.
   */
  onHead(head: ResponseHead, req: IncomingMessage, res: ServerResponse): void | 'again';
  /** The upstream failed before the response started: answer with an error. */
  onError(err: Error, req: IncomingMessage, res: ServerResponse): void;
}

export const BUFFER_SIZE = 256 * 1024;
/** Reads in flight to the client per download; past this the upstream socket pauses. */
export const IN_FLIGHT = 4;
/** Free buffers kept for the next downloads; the rest go to the garbage collector. */
export const POOL_KEEP = 16;
const MAX_IDLE_SOCKETS = 32;
const IDLE_SOCKET_MS = 30_000;
/** Request headers the relay never copies: hop-by-hop, and those it writes itself. */
const NOT_COPIED: ReadonlySet<string> = new Set([...HOP_BY_HOP, 'expect', 'host', 'authorization']);

/** One upstream connection; its reads land in pooled buffers and go wherever `sink` says. */
interface Conn {
  socket: net.Socket;
  sink: ((bytes: number, buffer: Buffer) => boolean) | undefined;
  /** Set when the socket ends or fails, for whoever is using it. */
  onEnd: ((err: Error | undefined) => void) | undefined;
  /** What an idle timeout means now; unset (an idle pooled socket): close it. */
  onTimeout: (() => void) | undefined;
}

export class BlobRelay {
  private readonly free: Buffer[] = [];
  private readonly idle: Conn[] = [];
  private readonly waiting: { req: IncomingMessage; res: ServerResponse }[] = [];
  private active = 0;
  private closed = false;

  constructor(private readonly options: RelayOptions) {}

  /** Whether this request can be relayed: a GET without a body. */
  static accepts(req: IncomingMessage): boolean {
    const length = req.headers['content-length'];
    return req.method === 'GET' && req.headers['transfer-encoding'] === undefined && (length === undefined || length === '0');
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    if (this.active >= this.options.maxConnections) {
      const entry = { req, res };
      this.waiting.push(entry);
      res.once('close', () => {
        const i = this.waiting.indexOf(entry);
        if (i >= 0) this.waiting.splice(i, 1);
      });
      return;
    }
    this.active++;
    // An idle connection first: with that, connections never outnumber maxConnections.
    const reused = this.idle.pop();
    this.exchange(req, res, reused ?? this.connect(), reused !== undefined);
  }

  /** An exchange is over: the next waiting download takes its place. */
  private next(): void {
    this.active--;
    const entry = this.waiting.shift();
    if (entry) this.handle(entry.req, entry.res);
  }

  close(): void {
    this.closed = true;
    for (const conn of this.idle.splice(0)) conn.socket.destroy();
  }

  private take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafe(BUFFER_SIZE);
  }

  private give(buffer: Buffer): void {
    if (this.free.length < POOL_KEEP) this.free.push(buffer);
    else release(buffer); // now, not at V8's next full collection
  }

  private connect(): Conn {
    const { hostname, port } = this.options.upstream;
    const conn: Conn = { socket: undefined as unknown as net.Socket, sink: undefined, onEnd: undefined, onTimeout: undefined };
    conn.socket = net.connect({
      host: hostname.replace(/^\[|\]$/g, ''),
      port: Number(port || 80),
      noDelay: true,
      keepAlive: true,
      keepAliveInitialDelay: 10_000,
      onread: {
        buffer: () => this.take(),
        // Returning false pauses the socket: the client has IN_FLIGHT buffers to write.
        callback: (bytes, buffer) => {
          if (conn.sink) return conn.sink(bytes, buffer as Buffer);
          // Bytes on an idle connection: it is out of step, never reuse it.
          this.give(buffer as Buffer);
          conn.socket.destroy();
          return false;
        },
      },
    });
    const ended = (err?: Error) => {
      const i = this.idle.indexOf(conn);
      if (i >= 0) this.idle.splice(i, 1);
      const onEnd = conn.onEnd;
      conn.onEnd = undefined;
      onEnd?.(err);
    };
    conn.socket.on('error', ended);
    conn.socket.on('end', () => conn.socket.destroy());
    conn.socket.on('close', () => ended(undefined));
    // One listener for the socket's life: setTimeout(ms, fn) per request would add one each time.
    conn.socket.on('timeout', () => (conn.onTimeout ? conn.onTimeout() : conn.socket.destroy()));
    return conn;
  }

  private release(conn: Conn): void {
    conn.sink = undefined;
    conn.onEnd = undefined;
    conn.onTimeout = undefined;
    if (this.closed || this.idle.length >= MAX_IDLE_SOCKETS || conn.socket.destroyed) {
      conn.socket.destroy();
      return;
    }
    conn.socket.setTimeout(IDLE_SOCKET_MS);
    this.idle.push(conn);
  }

  private exchange(req: IncomingMessage, res: ServerResponse, conn: Conn, reused: boolean): void {
    const { socket } = conn;
    const parser = new HeadParser();
    let framing: BodyFraming | undefined;
    let decoder: ChunkedDecoder | undefined;
    let remaining = 0;
    let inFlight = 0;
    let paused = false;
    let done = false;
    let gotBytes = false;
    let reusable = true;

    const finish = (reuse: boolean) => {
      if (done) return;
      done = true;
      res.off('close', clientLeft);
      if (reuse && reusable) this.release(conn);
      else socket.destroy();
      this.next();
    };
    // The client left before the body was through: cancel the upstream request.
    const clientLeft = () => {
      if (!done) finish(false);
    };
    res.once('close', clientLeft);

    const failed = (err: Error | undefined) => {
      if (done) return;
      // A kept-alive socket the upstream closed as it was reused: try once on a new one (GET is
      // safe). Not after a timeout: the upstream had its time.
      const timedOut = (err as NodeJS.ErrnoException | undefined)?.code === 'UPSTREAM_TIMEOUT';
      if (reused && !gotBytes && !timedOut && !res.headersSent && !res.destroyed) {
        done = true;
        res.off('close', clientLeft);
        socket.destroy();
        this.exchange(req, res, this.connect(), false);
        return;
      }
      if (framing === 'until-close' && err === undefined) {
        finish(false);
        res.end();
        return;
      }
      finish(false);
      if (res.headersSent) res.destroy();
      else this.options.onError(err ?? Object.assign(new Error('upstream closed the connection'), { code: 'ECONNRESET' }), req, res);
    };
    conn.onEnd = failed;

    conn.onTimeout = () => socket.destroy(Object.assign(new Error('upstream idle timeout'), { code: 'UPSTREAM_TIMEOUT' }));
    socket.setTimeout(this.options.timeoutMs);

    const resumeIfNeeded = () => {
      if (paused && inFlight < IN_FLIGHT && !done) {
        paused = false;
        socket.resume();
      }
    };
    /** Sends one body piece held in `buffer`; the buffer goes back to the pool once written. */
    const forward = (piece: Buffer, buffer: Buffer | undefined): void => {
      inFlight++;
      res.write(piece, () => {
        inFlight--;
        if (buffer) this.give(buffer);
        resumeIfNeeded();
      });
    };

    const onBody = (piece: Buffer, buffer: Buffer | undefined): boolean => {
      if (framing === 'length') {
        if (piece.length > remaining) {
          // More than announced: the connection is out of step, never reuse it.
          forward(piece.subarray(0, remaining), buffer);
          remaining = 0;
          finish(false);
          res.end();
          return false;
        }
        remaining -= piece.length;
        if (piece.length > 0) forward(piece, buffer);
        else if (buffer) this.give(buffer);
        if (remaining === 0) {
          finish(true);
          res.end();
          return true;
        }
      } else if (framing === 'chunked') {
        const out = decoder!.push(piece);
        if (out.error) {
          if (buffer) this.give(buffer);
          failed(new Error(`malformed chunked body from the upstream: ${out.error}`));
          return false;
        }
        // The decoded pieces are views of the buffer: it is given back after the last one is written.
        for (let i = 0; i < out.pieces.length; i++) forward(out.pieces[i]!, i === out.pieces.length - 1 ? buffer : undefined);
        if (out.pieces.length === 0 && buffer) this.give(buffer);
        if (out.complete) {
          finish(out.rest === 0);
          res.end();
          return true;
        }
      } else {
        forward(piece, buffer);
      }
      if (inFlight >= IN_FLIGHT) {
        paused = true;
        return false;
      }
      return true;
    };

    conn.sink = (bytes, buffer) => {
      gotBytes = true;
      let data = buffer.subarray(0, bytes);
      if (framing !== undefined) return onBody(data, buffer);
      for (;;) {
        const parsed = parser.push(data);
        if (parsed.error || !parsed.head) {
          this.give(buffer);
          if (!parsed.error) return true; // the head is not complete yet
          failed(new Error(`malformed response head from the upstream: ${parsed.error}`));
          return false;
        }
        data = data.subarray(parsed.consumed);
        const head = parsed.head;
        if (head.status < 200) {
          if (data.length > 0) continue; // an interim answer (103): the real head follows
          this.give(buffer);
          return true;
        }
        const f = framingOf(head, 'GET');
        if ('error' in f) {
          this.give(buffer);
          failed(new Error(`upstream response refused: ${f.error}`));
          return false;
        }
        if (this.options.onHead(head, req, res) === 'again') {
          this.give(buffer);
          finish(false);
          return false;
        }
        try {
          res.writeHead(head.status, head.headers);
        } catch (err) {
          this.give(buffer);
          finish(false);
          res.destroy(err as Error);
          return false;
        }
        framing = f.kind;
        remaining = f.length;
        reusable = !head.close;
        if (f.kind === 'none') {
          this.give(buffer);
          finish(data.length === 0);
          res.end();
          return true;
        }
        if (f.kind === 'chunked') decoder = new ChunkedDecoder();
        return onBody(data, buffer);
      }
    };

    socket.write(this.requestHead(req));
  }

  private requestHead(req: IncomingMessage): string {
    const lines = [`GET ${req.url ?? '/'} HTTP/1.1`, `host: ${this.options.upstream.host}`];
    const raw = req.rawHeaders;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i]!.toLowerCase();
      // Headers the pass-through removed from req.headers (forwarding, hop-by-hop) stay here too.
      if (!NOT_COPIED.has(name) && req.headers[name] !== undefined) lines.push(`${raw[i]}: ${raw[i + 1]}`);
    }
    // Authorization as the pass-through left it: the client's, regshim's own, or none.
    const authorization = req.headers.authorization;
    if (authorization !== undefined) lines.push(`authorization: ${authorization}`);
    return `${lines.join('\r\n')}\r\n\r\n`;
  }
}
