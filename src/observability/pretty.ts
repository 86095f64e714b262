// Logs for a person at a terminal: pino's own pretty printer, one line per request
// (time, method, path, status, duration, what regshim did). Imported only when chosen
// (--log-format pretty, or a terminal on stdout): JSON logging never loads it.
import PinoPretty, { type MessageFormatFunc, type PrettyStream } from 'pino-pretty';

/** Fields no line repeats after its message: pino's own, and those the message says. */
const UNSHOWN = new Set(['level', 'time', 'pid', 'hostname', 'service', 'msg', 'reqId', 'repo', 'ref']);

/** A pino destination that writes readable lines to `fd` (stdout by default). */
export function prettyDestination(opts: { colorize: boolean; destination?: number | NodeJS.WritableStream }): PrettyStream {
  return PinoPretty({
    colorize: opts.colorize,
    // One synchronous write a line, as pino's own stdout destination: nothing is lost at exit.
    sync: true,
    destination: opts.destination ?? 1,
    translateTime: 'SYS:HH:MM:ss.l',
    // The message carries the fields itself: pino-pretty's `ignore` copies every line to
    // drop keys, which cost a third of a line's time (docs/performance.md). Errors still print.
    hideObject: true,
    messageFormat,
  });
}

type Colors = Parameters<MessageFormatFunc>[3]['colors'];

const messageFormat: MessageFormatFunc = (log, messageKey, _levelLabel, { colors }) => {
  const msg = String(log[messageKey] ?? '');
  if (msg !== 'request') return `${msg}${typeof log.repo === 'string' ? ` ${log.repo}${typeof log.ref === 'string' ? `:${log.ref}` : ''}` : ''}${restOf(log)}`;
  const status = Number(log.status);
  const upstream = typeof log.upstreamMs === 'number' ? ` (upstream ${log.upstreamMs} ms)` : '';
  return `${String(log.method)} ${String(log.path)} ${statusColor(colors, status)(String(status))} ${String(log.durationMs)} ms${upstream} ${colors.bold(String(log.action))}`;
};

/** The line's other fields, as one compact JSON object; nothing when there are none. */
function restOf(log: Record<string, unknown>): string {
  const rest: Record<string, unknown> = {};
  let any = false;
  for (const key in log) {
    if (UNSHOWN.has(key) || log[key] === undefined) continue;
    // An error by its message and code; its stack is in the JSON logs (--log-format json).
    const value = log[key];
    rest[key] = key === 'err' && typeof value === 'object' && value !== null ? errorText(value as { message?: unknown; code?: unknown }) : value;
    any = true;
  }
  return any ? ` ${JSON.stringify(rest)}` : '';
}

function errorText(err: { message?: unknown; code?: unknown }): string {
  return `${String(err.message ?? 'error')}${typeof err.code === 'string' && !String(err.message).includes(err.code) ? ` (${err.code})` : ''}`;
}

function statusColor(colors: Colors, status: number): (text: string) => string {
  if (status >= 500) return colors.red;
  if (status >= 400) return colors.yellow;
  return colors.green;
}
