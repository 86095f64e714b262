import { availableParallelism } from 'node:os';
import { type AuthConfig, type LoginLimits, type RawAuthConfig, parseAuthConfig } from './config-auth.js';
import { DEFAULT_INDEX_LAYER_MEDIA_TYPE } from './registry/media-types.js';
import { CACHE_FORM_MODES, type CacheFormMode } from './cache/forms/form-choice.js';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
/** JSON lines for tools, or one readable line per request for a person (pino-pretty). */
export type LogFormat = 'json' | 'pretty';
const LOG_FORMATS: readonly LogFormat[] = ['json', 'pretty'];

export interface Config extends AuthConfig {
  /** The registry regshim fronts, origin only (http: or https:). */
  readonly upstream: URL;
  readonly listenHost: string;
  /** 0 picks a free port (tests). */
  readonly listenPort: number;
  /** Extra CA certificates (PEM) to trust for an https upstream. */
  readonly upstreamCa: string | undefined;
  /** PEM certificate and key: when both are set, clients reach regshim over https. */
  readonly tlsCert: string | undefined;
  readonly tlsKey: string | undefined;
  readonly logLevel: LogLevel;
  readonly logFormat: LogFormat;
  /** Bound of the digest map, in bytes of index and bookkeeping. */
  readonly cacheMaxBytes: number;
  /** Largest manifest body regshim reads into memory; larger PUTs get 413. */
  readonly maxManifestBytes: number;
  /** Media type of the layer that keeps the original index bytes (allow-list it on Quay, GitLab). */
  readonly indexMediaType: string;
  /** The form caches are stored in upstream: BuildKit's, the image form, or auto (cache/forms/form-choice.ts). */
  readonly cacheForm: CacheFormMode;
  /** Serve BuildKit's image-manifest caches as an index to clients that ask for one (BuildKit < 0.12 reads no other form). */
  readonly imageManifestAsIndex: boolean;
  /** An upstream silent for this long (no headers, no body bytes) gets 504. */
  readonly upstreamTimeoutMs: number;
  /** A client connection silent for this long is closed. */
  readonly clientIdleTimeoutMs: number;
  /** Manifest bytes read, held and converted at once, over all requests; past it, PUTs wait. */
  readonly maxManifestBytesInFlight: number;
  /** How long a manifest PUT waits for room under that bound before it gets 503. */
  readonly manifestQueueTimeoutMs: number;
  /** Upstream connections, for streams and for regshim's own calls alike; excess requests queue. */
  readonly upstreamConnections: number;
  /** Client connections held at once; more are refused at accept. */
  readonly maxClientConnections: number;
  /** A client must send its whole request head within this long (slowloris). */
  readonly clientHeaderTimeoutMs: number;
  /** Largest request head (request line and headers); larger gets 431. */
  readonly maxHeaderBytes: number;
  /** Most request header fields; more gets 431. */
  readonly maxHeaderCount: number;
  /** Processes serving requests; more than 1 runs them as workers behind one port (src/workers.ts). */
  readonly workers: number;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Raw settings, as strings, from flags or environment; undefined means "use the default". */
export interface RawConfig extends RawAuthConfig {
  upstream?: string | undefined;
  listen?: string | undefined;
  upstreamCa?: string | undefined;
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
  logLevel?: string | undefined;
  logFormat?: string | undefined;
  cacheMaxBytes?: string | undefined;
  maxManifestBytes?: string | undefined;
  indexMediaType?: string | undefined;
  imageManifestAsIndex?: string | undefined;
  cacheForm?: string | undefined;
  upstreamTimeout?: string | undefined;
  clientIdleTimeout?: string | undefined;
  maxManifestBytesInFlight?: string | undefined;
  manifestQueueTimeout?: string | undefined;
  upstreamConnections?: string | undefined;
  maxClientConnections?: string | undefined;
  maxHeaderBytes?: string | undefined;
  maxHeaderCount?: string | undefined;
  clientHeaderTimeout?: string | undefined;
  workers?: string | undefined;
}

export const DEFAULTS = {
  listen: '127.0.0.1:5000',
  logLevel: 'info' as LogLevel,
  /** The CLI picks pretty when stdout is a terminal; everything else gets JSON. */
  logFormat: 'json' as LogFormat,
  cacheMaxBytes: 64 * 1024 * 1024,
  maxManifestBytes: 4 * 1024 * 1024,
  indexMediaType: DEFAULT_INDEX_LAYER_MEDIA_TYPE,
  imageManifestAsIndex: 'on',
  cacheForm: 'auto' as CacheFormMode,
  upstreamTimeoutMs: 120_000,
  clientIdleTimeoutMs: 300_000,
  maxManifestBytesInFlight: 64 * 1024 * 1024,
  manifestQueueTimeoutMs: 30_000,
  upstreamConnections: 64,
  maxClientConnections: 1024,
  clientHeaderTimeoutMs: 60_000,
  maxHeaderBytes: 16 * 1024,
  maxHeaderCount: 100,
  /** Password checks (bcrypt) at once, off the event loop; each thread adds some 13 MiB of RSS while it runs. */
  authCheckThreads: 1,
  /** Password checks waiting for a thread; more are answered 429. */
  authCheckQueue: 16,
  authMaxFailuresPerUser: 10,
  /** Higher than per user: clients behind one NAT or ingress share an address. */
  authMaxFailuresPerAddress: 50,
  authFailureWindowMs: 60_000,
  /** One process measured best on 2 shared cores (docs/performance.md); 'auto': one per CPU, at most 4. */
  workers: '1',
  maxAutoWorkers: 4,
};

// RFC 6838 "type/subtype" with its restricted-name characters.
const MEDIA_TYPE_RE = /^[a-zA-Z0-9][a-zA-Z0-9!#$&^_.+-]{0,126}\/[a-zA-Z0-9][a-zA-Z0-9!#$&^_.+-]{0,126}$/;

/**
 * Validates raw settings once, at start. File contents (CA, certificate, key) are passed
 * in already read, so this stays free of I/O. Every message says how to fix the problem.
 */
export function parseConfig(raw: RawConfig, files: { read(path: string): string } = { read: noFiles }): Config {
  const upstream = parseUpstream(raw.upstream);
  const [listenHost, listenPort] = parseListen(raw.listen ?? DEFAULTS.listen);
  const logLevel = (raw.logLevel ?? DEFAULTS.logLevel) as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError(`--log-level ${JSON.stringify(raw.logLevel)} is not one of ${LOG_LEVELS.join(', ')}`);
  }
  const logFormat = (raw.logFormat ?? DEFAULTS.logFormat) as LogFormat;
  if (!LOG_FORMATS.includes(logFormat)) {
    throw new ConfigError(`--log-format ${JSON.stringify(raw.logFormat)} is not one of ${LOG_FORMATS.join(', ')}`);
  }
  if ((raw.tlsCert === undefined) !== (raw.tlsKey === undefined)) {
    throw new ConfigError('--tls-cert and --tls-key go together: give both files, or neither for plain http');
  }
  const indexMediaType = raw.indexMediaType ?? DEFAULTS.indexMediaType;
  if (!MEDIA_TYPE_RE.test(indexMediaType)) {
    throw new ConfigError(`--index-media-type ${JSON.stringify(indexMediaType)} is not a media type like application/vnd.example.index.v1+json`);
  }
  return Object.freeze({
    upstream,
    listenHost,
    listenPort,
    upstreamCa: readFile(files, '--upstream-ca', raw.upstreamCa),
    tlsCert: readFile(files, '--tls-cert', raw.tlsCert),
    tlsKey: readFile(files, '--tls-key', raw.tlsKey),
    logLevel,
    logFormat,
    cacheMaxBytes: parseBytes('--cache-max-bytes', raw.cacheMaxBytes, DEFAULTS.cacheMaxBytes),
    maxManifestBytes: parseBytes('--max-manifest-bytes', raw.maxManifestBytes, DEFAULTS.maxManifestBytes),
    indexMediaType,
    cacheForm: parseCacheForm(raw.cacheForm ?? DEFAULTS.cacheForm),
    imageManifestAsIndex: parseSwitch('--image-manifest-as-index', raw.imageManifestAsIndex ?? DEFAULTS.imageManifestAsIndex),
    upstreamTimeoutMs: parseSeconds('--upstream-timeout', raw.upstreamTimeout, DEFAULTS.upstreamTimeoutMs),
    clientIdleTimeoutMs: parseSeconds('--client-idle-timeout', raw.clientIdleTimeout, DEFAULTS.clientIdleTimeoutMs),
    ...parseLimits(raw),
    workers: parseWorkers(raw.workers ?? DEFAULTS.workers),
    ...parseAuthConfig(raw, upstream, listenHost, (path) => files.read(path), (message) => new ConfigError(message), parseLoginLimits(raw)),
  });
}

function parseLimits(raw: RawConfig) {
  const maxManifestBytes = parseBytes('--max-manifest-bytes', raw.maxManifestBytes, DEFAULTS.maxManifestBytes);
  const maxManifestBytesInFlight = parseBytes('--max-manifest-bytes-in-flight', raw.maxManifestBytesInFlight, DEFAULTS.maxManifestBytesInFlight);
  if (maxManifestBytesInFlight < maxManifestBytes) {
    throw new ConfigError(`--max-manifest-bytes-in-flight (${maxManifestBytesInFlight}) must be at least --max-manifest-bytes (${maxManifestBytes}), or the largest manifest could never be read`);
  }
  return {
    maxManifestBytesInFlight,
    manifestQueueTimeoutMs: parseSeconds('--manifest-queue-timeout', raw.manifestQueueTimeout, DEFAULTS.manifestQueueTimeoutMs),
    upstreamConnections: parseCount('--upstream-connections', raw.upstreamConnections, DEFAULTS.upstreamConnections),
    maxClientConnections: parseCount('--max-client-connections', raw.maxClientConnections, DEFAULTS.maxClientConnections),
    clientHeaderTimeoutMs: parseSeconds('--client-header-timeout', raw.clientHeaderTimeout, DEFAULTS.clientHeaderTimeoutMs),
    maxHeaderBytes: parseBytes('--max-header-bytes', raw.maxHeaderBytes, DEFAULTS.maxHeaderBytes),
    maxHeaderCount: parseCount('--max-header-count', raw.maxHeaderCount, DEFAULTS.maxHeaderCount),
  };
}

function parseLoginLimits(raw: RawConfig): LoginLimits {
  return {
    passwordChecks: {
      threads: parseCount('--auth-check-threads', raw.authCheckThreads, DEFAULTS.authCheckThreads),
      queue: parseCount('--auth-check-queue', raw.authCheckQueue, DEFAULTS.authCheckQueue),
    },
    failureLimits: {
      perUser: parseCount('--auth-max-failures-per-user', raw.authMaxFailuresPerUser, DEFAULTS.authMaxFailuresPerUser),
      perAddress: parseCount('--auth-max-failures-per-address', raw.authMaxFailuresPerAddress, DEFAULTS.authMaxFailuresPerAddress),
      windowMs: parseSeconds('--auth-failure-window', raw.authFailureWindow, DEFAULTS.authFailureWindowMs),
    },
  };
}

export function parseCount(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new ConfigError(`${flag} ${JSON.stringify(value)} must be a positive whole number, e.g. ${fallback}`);
  }
  return n;
}

function parseCacheForm(value: string): CacheFormMode {
  if ((CACHE_FORM_MODES as readonly string[]).includes(value)) return value as CacheFormMode;
  throw new ConfigError(`--cache-form ${JSON.stringify(value)} must be auto (BuildKit's form until the registry refuses its media types), buildkit or image`);
}

function parseSwitch(flag: string, value: string): boolean {
  if (value === 'on') return true;
  if (value === 'off') return false;
  throw new ConfigError(`${flag} ${JSON.stringify(value)} must be on or off`);
}

function parseWorkers(value: string): number {
  if (value === 'auto') return Math.min(availableParallelism(), DEFAULTS.maxAutoWorkers);
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 256) {
    throw new ConfigError(`--workers ${JSON.stringify(value)} must be auto or a whole number from 1 to 256`);
  }
  return n;
}

function parseUpstream(value: string | undefined): URL {
  if (value === undefined || value === '') {
    throw new ConfigError('--upstream is required: the registry to front, e.g. --upstream https://123456789012.dkr.ecr.eu-west-1.amazonaws.com (or REGSHIM_UPSTREAM)');
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`--upstream ${JSON.stringify(value)} is not a URL: write it as http://host:port or https://host`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(`--upstream ${JSON.stringify(value)} must start with http:// or https://`);
  }
  if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
    throw new ConfigError(`--upstream ${JSON.stringify(value)} must be an origin only (scheme, host, port): the registry API lives at /v2/, and credentials come from the clients or from --docker-config / --upstream-username, never the URL`);
  }
  return new URL(url.origin);
}

function parseListen(value: string): [string, number] {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw new ConfigError(`--listen ${JSON.stringify(value)} must be host:port, e.g. 127.0.0.1:5000 or 0.0.0.0:5000 or [::1]:5000`);
  }
  return [m[1] ?? (m[2] || '0.0.0.0'), port];
}

function parseBytes(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const m = /^(\d+)\s*(|b|k|kb|kib|m|mb|mib|g|gb|gib)$/i.exec(value.trim());
  const unit = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3 };
  const n = m ? Number(m[1]) * unit[(m[2] ?? '').toLowerCase() as keyof typeof unit] : NaN;
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new ConfigError(`${flag} ${JSON.stringify(value)} must be a positive size in bytes, e.g. 67108864 or 64MiB`);
  }
  return n;
}

function parseSeconds(flag: string, value: string | undefined, fallbackMs: number): number {
  if (value === undefined) return fallbackMs;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) {
    throw new ConfigError(`${flag} ${JSON.stringify(value)} must be a positive number of seconds, e.g. 120 or 0.5`);
  }
  return Math.round(n * 1000);
}

function readFile(files: { read(path: string): string }, flag: string, path: string | undefined): string | undefined {
  if (path === undefined) return undefined;
  try {
    return files.read(path);
  } catch (err) {
    throw new ConfigError(`${flag} ${JSON.stringify(path)} cannot be read (${(err as Error).message}): give the path of a PEM file`);
  }
}

function noFiles(path: string): string {
  throw new Error(`no file reader for ${path}`);
}
