// Flags and environment -> Config -> start. Nothing else lives here.
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { request } from 'undici';
import { toImageManifest, readConvertedManifest, restoreIndex } from './cache/convert.js';
import { classifyManifest } from './cache/detect.js';
import { ConfigError, DEFAULTS, type RawConfig, parseConfig } from './config.js';
import { DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST } from './registry/media-types.js';
import { createLogger } from './observability/log.js';
import { isWorker, superviseWorkers, workerMetrics } from './workers.js';

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
const USAGE_ERROR = 2;

function serveOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--upstream <url>', 'registry to front, e.g. https://registry.example.com').env('REGSHIM_UPSTREAM'))
    .addOption(new Option('--listen <host:port>', `address to listen on (default ${DEFAULTS.listen})`).env('REGSHIM_LISTEN'))
    .addOption(new Option('--upstream-ca <file>', 'PEM CA bundle to trust for an https upstream').env('REGSHIM_UPSTREAM_CA'))
    .addOption(new Option('--tls-cert <file>', 'PEM certificate: serve clients over https').env('REGSHIM_TLS_CERT'))
    .addOption(new Option('--tls-key <file>', 'PEM private key for --tls-cert').env('REGSHIM_TLS_KEY'))
    .addOption(new Option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent (default info)').env('REGSHIM_LOG_LEVEL'))
    .addOption(new Option('--log-format <format>', 'json, or pretty: one readable line per request (default pretty on a terminal, else json)').env('REGSHIM_LOG_FORMAT'))
    .addOption(new Option('--cache-max-bytes <size>', 'memory bound of the digest map (default 64MiB)').env('REGSHIM_CACHE_MAX_BYTES'))
    .addOption(new Option('--max-manifest-bytes <size>', 'largest manifest body accepted (default 4MiB)').env('REGSHIM_MAX_MANIFEST_BYTES'))
    .addOption(new Option('--index-media-type <type>', `media type of the layer holding the original index (default ${DEFAULTS.indexMediaType})`).env('REGSHIM_INDEX_MEDIA_TYPE'))
    .addOption(new Option('--upstream-timeout <seconds>', 'answer 504 when the upstream is silent this long (default 120)').env('REGSHIM_UPSTREAM_TIMEOUT'))
    .addOption(new Option('--client-idle-timeout <seconds>', 'close client connections idle this long (default 300)').env('REGSHIM_CLIENT_IDLE_TIMEOUT'))
    .addOption(new Option('--max-manifest-bytes-in-flight <size>', 'manifest bytes held at once over all requests; more PUTs wait (default 64MiB)').env('REGSHIM_MAX_MANIFEST_BYTES_IN_FLIGHT'))
    .addOption(new Option('--manifest-queue-timeout <seconds>', 'how long a manifest PUT waits for room before 503 (default 30)').env('REGSHIM_MANIFEST_QUEUE_TIMEOUT'))
    .addOption(new Option('--upstream-connections <n>', 'upstream connections per pool (streams; own calls); excess requests queue (default 64)').env('REGSHIM_UPSTREAM_CONNECTIONS'))
    .addOption(new Option('--max-client-connections <n>', 'client connections held at once (default 1024)').env('REGSHIM_MAX_CLIENT_CONNECTIONS'))
    .addOption(new Option('--client-header-timeout <seconds>', 'a client must send its request head within this long (default 60)').env('REGSHIM_CLIENT_HEADER_TIMEOUT'))
    .addOption(new Option('--max-header-bytes <size>', 'largest request head; larger gets 431 (default 16KiB)').env('REGSHIM_MAX_HEADER_BYTES'))
    .addOption(new Option('--max-header-count <n>', 'most request header fields; more get 431 (default 100)').env('REGSHIM_MAX_HEADER_COUNT'))
    .addOption(new Option('--workers <n>', `processes serving requests, or auto: one per CPU, at most ${DEFAULTS.maxAutoWorkers} (default ${DEFAULTS.workers})`).env('REGSHIM_WORKERS'))
    .addOption(new Option('--docker-config <dir>', "Docker config folder (or config.json) with regshim's upstream credentials (default $DOCKER_CONFIG)").env('REGSHIM_DOCKER_CONFIG'))
    .addOption(new Option('--upstream-username <name>', 'username for the upstream; the password comes from --upstream-password-file or REGSHIM_UPSTREAM_PASSWORD').env('REGSHIM_UPSTREAM_USERNAME'))
    .addOption(new Option('--upstream-password-file <file>', 'file holding the upstream password or token (a mounted Secret)').env('REGSHIM_UPSTREAM_PASSWORD_FILE'))
    .addOption(new Option('--credential-helper-timeout <seconds>', 'give up on a docker-credential helper after this long (default 10)').env('REGSHIM_CREDENTIAL_HELPER_TIMEOUT'))
    .addOption(new Option('--auth-htpasswd <file>', 'require clients to log in with a user of this htpasswd file (bcrypt)').env('REGSHIM_AUTH_HTPASSWD'))
    .addOption(
      new Option('--allow-repository <glob>', 'reach only repositories matching this glob (repeatable, or comma-separated)')
        .env('REGSHIM_ALLOW_REPOSITORY')
        .argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]),
    )
    .addOption(new Option('--allow-unauthenticated', 'listen beyond loopback with upstream credentials and no --auth-htpasswd (env REGSHIM_ALLOW_UNAUTHENTICATED=1)'));
}

async function serve(opts: RawConfig): Promise<void> {
  const raw: RawConfig = {
    ...opts,
    logFormat: opts.logFormat ?? (process.stdout.isTTY ? 'pretty' : 'json'),
    dockerConfigEnv: process.env.DOCKER_CONFIG,
    upstreamPassword: process.env.REGSHIM_UPSTREAM_PASSWORD,
    allowUnauthenticated: opts.allowUnauthenticated ?? process.env.REGSHIM_ALLOW_UNAUTHENTICATED,
  };
  const config = parseConfig(raw, { read: (path) => readFileSync(path, 'utf8') });
  const logDestination = config.logFormat === 'pretty' ? await prettyLogs() : undefined;
  if (config.workers > 1 && !isWorker()) {
    // Workers write through the primary's stdout, no terminal of their own: tell them the format.
    process.env.REGSHIM_LOG_FORMAT = config.logFormat;
    return superviseWorkers(config.workers, createLogger(config.logLevel, logDestination));
  }
  // Loaded only where requests are served: a primary that only supervises workers stays small.
  const { createServer } = await import('./server.js');
  const shim = createServer(config, { ...(isWorker() ? { clusterMetrics: workerMetrics() } : {}), ...(logDestination ? { logDestination } : {}) });
  await shim.listen();
  const stop = (signal: string) => {
    shim.log.info({ signal }, 'shutting down');
    shim.close().then(() => process.exit(0), () => process.exit(1));
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  // Every request path catches its own errors (tests send what attackers send); these are
  // the last line. A lost promise leaves no state behind: log it and go on. An exception
  // may have: finish what is in flight and exit, for the supervisor to restart.
  process.on('unhandledRejection', (reason) => shim.log.error({ err: reason }, 'unhandled promise rejection'));
  process.once('uncaughtException', (err) => {
    shim.log.fatal({ err }, 'uncaught exception: shutting down');
    shim.close().finally(() => process.exit(1));
  });
}

/** pino-pretty, loaded only when chosen: JSON logging never pays for it. */
async function prettyLogs() {
  const { prettyDestination } = await import('./observability/pretty.js');
  return prettyDestination({ colorize: process.stdout.isTTY === true && process.env.NO_COLOR === undefined });
}

/** `regshim convert <file>`: the image manifest regshim would store for a cache index file. */
function convert(file: string, indexMediaType: string | undefined): void {
  const bytes = readFileSync(file);
  const detection = classifyManifest(bytes, undefined);
  if (detection.kind === 'invalid') throw new ConfigError(`${file} is a malformed cache index: ${detection.detail}`);
  if (detection.kind === 'not-cache') throw new ConfigError(`${file} is not a BuildKit cache index (an OCI index or Docker list of cache blobs)`);
  const config = parseConfig({ upstream: 'http://unused', indexMediaType });
  process.stdout.write(`${JSON.stringify(toImageManifest(detection.index, bytes, config.indexMediaType).manifest, null, 2)}\n`);
}

/** `regshim inspect <manifest-url>`: both forms of a cache, read from a registry or through regshim. */
async function inspect(url: string, indexMediaType: string | undefined): Promise<void> {
  const manifestUrl = new URL(url);
  const accept = [OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST].join(', ');
  const get = async (u: URL) => {
    const res = await request(u, { headers: { accept } });
    const body = Buffer.from(await res.body.arrayBuffer());
    if (res.statusCode !== 200) throw new ConfigError(`GET ${u.href} answered ${res.statusCode}: ${body.toString('utf8').slice(0, 500)}`);
    return body;
  };
  const bytes = await get(manifestUrl);
  const ref = readConvertedManifest(bytes);
  let index: Buffer;
  if (ref) {
    index = restoreIndex(ref, await get(new URL(manifestUrl.pathname.replace(/\/manifests\/[^/]+$/, `/blobs/${ref.indexDigest}`), manifestUrl)));
  } else {
    index = bytes;
  }
  const detection = classifyManifest(index, undefined);
  if (detection.kind !== 'cache') throw new ConfigError(`${url} is not a BuildKit cache (neither a cache index nor a manifest regshim converted)`);
  const config = parseConfig({ upstream: 'http://unused', indexMediaType });
  const converted = toImageManifest(detection.index, index, config.indexMediaType);
  const out = {
    source: ref ? 'converted manifest (upstream)' : 'cache index',
    index: { digest: converted.manifest.annotations['dev.regshim.cache.index.digest'], size: index.length, document: JSON.parse(index.toString('utf8')) as unknown },
    manifest: { digest: converted.digest, size: converted.bytes.length, document: converted.manifest },
  };
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
}

export async function main(argv: string[]): Promise<void> {
  const program = new Command('regshim')
    .description('Registry proxy that stores BuildKit index-style caches as OCI image manifests')
    .version(VERSION, '--version')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  serveOptions(program.command('serve', { isDefault: true }).description('run the proxy (the default command)'))
    .exitOverride()
    .action(async (opts: RawConfig) => serve(opts));
  program
    .command('convert <file>')
    .description('print the OCI image manifest regshim stores for a cache index file')
    .option('--index-media-type <type>', 'media type of the index layer')
    .exitOverride()
    .action((file: string, opts: { indexMediaType?: string }) => convert(file, opts.indexMediaType));
  program
    .command('inspect <manifest-url>')
    .description('show both forms of a cache, e.g. http://127.0.0.1:5000/v2/team/app/manifests/cache')
    .option('--index-media-type <type>', 'media type of the index layer')
    .exitOverride()
    .action(async (url: string, opts: { indexMediaType?: string }) => inspect(url, opts.indexMediaType));
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.exitCode === 0 ? 0 : USAGE_ERROR;
      return;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`regshim: ${err.message}\nRun 'regshim --help' for the options.\n`);
      process.exitCode = USAGE_ERROR;
      return;
    }
    process.stderr.write(`regshim: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  }
  // A worker that failed to start would be kept alive by its channel to the primary.
  if (isWorker() && process.exitCode) process.exit();
}
