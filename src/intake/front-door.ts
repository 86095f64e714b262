// The HTTP server itself, before any routing: its limits (head size and time, connections,
// idle time), the hooks Node calls with what is not yet a request (a malformed head,
// CONNECT, Expect: 100-continue), and regshim's own answers. Nothing a client sends may
// throw past it.
import http, { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Config } from '../config.js';
import type { Logger } from '../observability/log.js';
import { OciError } from '../registry/errors.js';
import { answerAndClose } from './close.js';

export type Handler = (req: IncomingMessage, res: ServerResponse) => void;

export interface FrontDoor {
  readonly server: http.Server;
  /** Hands the request on, with the `100 Continue` that a client may be waiting for. */
  proceed(req: IncomingMessage, res: ServerResponse, handler: Handler): void;
  /** An answer of regshim's own; a body not yet read means the connection cannot be reused. */
  refuse(req: IncomingMessage, res: ServerResponse, err: OciError): void;
  /** A failure in handling the request: logged, and answered (UNKNOWN unless an OciError). */
  fail(req: IncomingMessage, res: ServerResponse, err: unknown): void;
}

export function createFrontDoor(config: Config, log: Logger, route: Handler): FrontDoor {
  const responding = new WeakMap<Socket, number>();
  const awaitingContinue = new WeakSet<IncomingMessage>();

  function refuse(req: IncomingMessage, res: ServerResponse, err: OciError): void {
    answerAndClose(req, res, err);
  }

  function fail(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    log.error({ err, method: req.method }, 'request failed');
    refuse(req, res, err instanceof OciError ? err : new OciError('UNKNOWN', 'regshim failed to answer this request'));
  }

  function proceed(req: IncomingMessage, res: ServerResponse, handler: Handler): void {
    if (awaitingContinue.delete(req)) res.writeContinue();
    handler(req, res);
  }

  const onRequest: Handler = (req, res) => {
    try {
      // Responses in flight per connection, so a framing error never writes into one.
      const socket = req.socket;
      responding.set(socket, (responding.get(socket) ?? 0) + 1);
      res.once('close', () => responding.set(socket, (responding.get(socket) ?? 1) - 1));
      route(req, res);
    } catch (err) {
      fail(req, res, err);
    }
  };

  // Node's requestTimeout (300 s for the whole body) would fail any push longer than five
  // minutes: switch it off and close only connections that go idle.
  const options: http.ServerOptions = {
    requestTimeout: 0,
    headersTimeout: config.clientHeaderTimeoutMs,
    // How often Node looks for heads that are late; by default every 30 s.
    connectionsCheckingInterval: Math.min(30_000, Math.max(100, config.clientHeaderTimeoutMs / 4)),
    keepAliveTimeout: 65_000,
    maxHeaderSize: config.maxHeaderBytes,
  };
  const server: http.Server = config.tlsCert && config.tlsKey
    ? https.createServer({ ...options, cert: config.tlsCert, key: config.tlsKey }, onRequest)
    : http.createServer(options, onRequest);
  server.setTimeout(config.clientIdleTimeoutMs);
  server.maxConnections = config.maxClientConnections;
  // Past either, Node's parser stops and reports HPE_HEADER_OVERFLOW: 431 below.
  server.maxHeadersCount = config.maxHeaderCount;
  // Expect: 100-continue: the body is asked for only once the request is admitted, so an
  // oversized manifest gets 413 at once instead of after the whole body.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    awaitingContinue.add(req);
    onRequest(req, res);
  });
  // CONNECT (a forward proxy's tunnel) is not for regshim: say so instead of dropping the line.
  server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
    socket.end(rawOciError(new OciError('REQUEST_INVALID', 'regshim is not a forward proxy: CONNECT is not served')));
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    log.debug({ code: err.code }, 'malformed or interrupted client request');
    // A response on its way (a blob download with a bad request pipelined behind it):
    // writing an error now would land in the middle of its body.
    if ((responding.get(socket as Socket) ?? 0) > 0 || !socket.writable || socket.destroyed) {
      socket.destroy();
      return;
    }
    socket.end(rawOciError(clientErrorOf(err.code, config)));
  });

  return { server, proceed, refuse, fail };
}

/** What Node's parser reported about a request, as the error the client gets. */
function clientErrorOf(code: string | undefined, config: Config): OciError {
  if (code === 'HPE_HEADER_OVERFLOW') {
    return new OciError('HEADERS_TOO_LARGE', `request heads are limited to ${config.maxHeaderBytes} bytes and ${config.maxHeaderCount} fields (--max-header-bytes, --max-header-count)`);
  }
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return new OciError('REQUEST_TIMEOUT', `the request head did not arrive within ${config.clientHeaderTimeoutMs / 1000} s (--client-header-timeout)`);
  }
  return new OciError('REQUEST_INVALID', 'the request is not well-formed HTTP/1.1', { parser: code });
}

/** An OCI error as a whole HTTP/1.1 response, for a socket that has no response object. */
function rawOciError(err: OciError): string {
  const body = JSON.stringify(err.toJSON());
  const reason = STATUS_CODES[err.status] ?? '';
  return `HTTP/1.1 ${err.status} ${reason}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

/**
 * RFC 9112 section 6.3: a request whose Transfer-Encoding does not end in chunked has no
 * knowable length. Registry clients send chunked alone; anything else is refused.
 */
export function isFramingSupported(req: IncomingMessage): boolean {
  const te = req.headers['transfer-encoding'];
  return te === undefined || te.trim().toLowerCase() === 'chunked';
}
