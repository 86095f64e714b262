// Logs for a person at a terminal: pino's own pretty printer, one line per request
// (time, method, path, status, duration, what regshim did). Imported only when chosen
// (--log-format pretty, or a terminal on stdout): JSON logging never loads it.
import PinoPretty, { type MessageFormatFunc, type PrettyStream } from 'pino-pretty';

/** The request line's fields: the pretty message says them, so they are not repeated after it. */
const REQUEST_FIELDS = ['reqId', 'method', 'path', 'repo', 'ref', 'status', 'bytesIn', 'bytesOut', 'durationMs', 'upstreamMs', 'action'];

/** A pino destination that writes readable lines to `fd` (stdout by default). */
export function prettyDestination(opts: { colorize: boolean; destination?: number | NodeJS.WritableStream }): PrettyStream {
  return PinoPretty({
    colorize: opts.colorize,
    // One synchronous write a line, as pino's own stdout destination: nothing is lost at exit.
    sync: true,
    destination: opts.destination ?? 1,
    translateTime: 'SYS:HH:MM:ss.l',
    singleLine: true,
    ignore: ['pid', 'hostname', 'service', ...REQUEST_FIELDS].join(','),
    messageFormat,
  });
}

type Colors = Parameters<MessageFormatFunc>[3]['colors'];

const messageFormat: MessageFormatFunc = (log, messageKey, _levelLabel, { colors }) => {
  const msg = String(log[messageKey] ?? '');
  if (msg !== 'request') return typeof log.repo === 'string' ? `${msg} ${log.repo}${typeof log.ref === 'string' ? `:${log.ref}` : ''}` : msg;
  const status = Number(log.status);
  const upstream = typeof log.upstreamMs === 'number' ? ` (upstream ${log.upstreamMs} ms)` : '';
  return `${String(log.method)} ${String(log.path)} ${statusColor(colors, status)(String(status))} ${String(log.durationMs)} ms${upstream} ${colors.bold(String(log.action))}`;
};

function statusColor(colors: Colors, status: number): (text: string) => string {
  if (status >= 500) return colors.red;
  if (status >= 400) return colors.yellow;
  return colors.green;
}
