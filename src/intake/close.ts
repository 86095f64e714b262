// Answering a request whose body may still be on its way, unread. The connection cannot be
// reused after such an answer, so it closes. Closed at once, though, a client that is still
// sending gets a reset, and a reset can destroy the answer in its receive buffer before it
// reads it: so the rest of the body is read and dropped for a moment after the answer, as
// nginx's lingering close does.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { markAction } from '../observability/access-log.js';
import { type OciError, sendOciError } from '../registry/errors.js';

const LINGER_MS = 2_000;

/** Sends `err`; when the body is not all read, closes the connection after a short linger. */
export function answerAndClose(req: IncomingMessage, res: ServerResponse, err: OciError, headers: Record<string, string> = {}): void {
  markAction(req, 'refused');
  if (req.complete) {
    sendOciError(res, err, req.method, headers);
    return;
  }
  res.shouldKeepAlive = false;
  lingerOnClose(req);
  sendOciError(res, err, req.method, { ...headers, connection: 'close' });
}

/** Node destroys the socket as soon as the answer is written; end it instead, keep reading, destroy later. */
function lingerOnClose(req: IncomingMessage): void {
  const socket = req.socket as IncomingMessage['socket'] & { destroySoon?: () => void };
  req.resume();
  socket.destroySoon = () => {
    socket.end();
    const timer = setTimeout(() => socket.destroy(), LINGER_MS);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
    // The client's own close ends it sooner.
    socket.once('end', () => socket.destroy());
  };
}
