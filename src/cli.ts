// Flags and environment -> Config -> start. Nothing else lives here.
import { lookup } from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { Command, CommanderError, Option } from 'commander';
import { toImageManifest } from './cache/convert.js';
import { classifyManifest } from './cache/detect.js';
import { type Config, ConfigError, DEFAULTS, type RawConfig, parseConfig, parseCount } from './config.js';
import { mustListenOnLoopback, openListenRefusal } from './config-auth.js';
import { parseCacheReference } from './inspect/reference.js';
import { formatMemoryBudget, memoryBudget } from './memory-budget.js';
import { parseRoute } from './registry/routes.js';
import { createLogger } from './observability/log.js';
import { isWorker, superviseWorkers, workerMetrics } from './workers.js';

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
const USAGE_ERROR = 2;

/** How regshim reaches a registry and with which credentials: the server's options, shared by inspect and doctor. */
function registryOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--upstream-ca <file>', 'PEM CA bundle to trust for an https upstream').env('REGSHIM_UPSTREAM_CA'))
    .addOption(new Option('--upstream-timeout <seconds>', 'answer 504 when the upstream is silent this long (default 120)').env('REGSHIM_UPSTREAM_TIMEOUT'))
    .addOption(new Option('--docker-config <dir>', "Docker config folder (or config.json) with regshim's upstream credentials (default $DOCKER_CONFIG)").env('REGSHIM_DOCKER_CONFIG'))
    .addOption(new Option('--upstream-username <name>', 'username for the upstream; the password comes from --upstream-password-file or REGSHIM_UPSTREAM_PASSWORD').env('REGSHIM_UPSTREAM_USERNAME'))
    .addOption(new Option('--upstream-password-file <file>', 'file holding the upstream password or token (a mounted Secret)').env('REGSHIM_UPSTREAM_PASSWORD_FILE'))
    .addOption(new Option('--credential-helper-timeout <seconds>', 'give up on a docker-credential helper after this long (default 10)').env('REGSHIM_CREDENTIAL_HELPER_TIMEOUT'))
    .addOption(new Option('--max-manifest-bytes <size>', 'largest manifest body accepted (default 4MiB)').env('REGSHIM_MAX_MANIFEST_BYTES'))
    .addOption(new Option('--index-media-type <type>', `media type of the layer holding the original index (default ${DEFAULTS.indexMediaType})`).env('REGSHIM_INDEX_MEDIA_TYPE'))
    .addOption(new Option('--cache-form <form>', "how caches are stored upstream: auto (BuildKit's form until the registry refuses its media types, then the image form), buildkit or image (default auto)").env('REGSHIM_CACHE_FORM'))
    .addOption(new Option('--image-manifest-as-index <on|off>', `answer BuildKit's image-manifest caches with an index to clients that ask for one, as BuildKit < 0.12 does (default ${DEFAULTS.imageManifestAsIndex})`).env('REGSHIM_IMAGE_MANIFEST_AS_INDEX'));
}

function serveOptions(cmd: Command): Command {
  return registryOptions(cmd.addOption(new Option('--upstream <url>', 'registry to front, e.g. https://registry.example.com').env('REGSHIM_UPSTREAM')))
    .addOption(new Option('--listen <host:port>', `address to listen on (default ${DEFAULTS.listen})`).env('REGSHIM_LISTEN'))
    .addOption(new Option('--tls-cert <file>', 'PEM certificate: serve clients over https').env('REGSHIM_TLS_CERT'))
    .addOption(new Option('--tls-key <file>', 'PEM private key for --tls-cert').env('REGSHIM_TLS_KEY'))
    .addOption(new Option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent (default info)').env('REGSHIM_LOG_LEVEL'))
    .addOption(new Option('--log-format <format>', 'json, or pretty: one readable line per request (default pretty on a terminal, else json)').env('REGSHIM_LOG_FORMAT'))
    .addOption(new Option('--cache-max-bytes <size>', 'memory bound of the digest map (default 64MiB)').env('REGSHIM_CACHE_MAX_BYTES'))
    .addOption(new Option('--client-idle-timeout <seconds>', 'close client connections idle this long (default 300)').env('REGSHIM_CLIENT_IDLE_TIMEOUT'))
    .addOption(new Option('--max-manifest-bytes-in-flight <size>', 'manifest bytes held at once over all requests; more PUTs wait (default 64MiB)').env('REGSHIM_MAX_MANIFEST_BYTES_IN_FLIGHT'))
    .addOption(new Option('--manifest-queue-timeout <seconds>', 'how long a manifest PUT waits for room before 503 (default 30)').env('REGSHIM_MANIFEST_QUEUE_TIMEOUT'))
    .addOption(new Option('--upstream-connections <n>', 'upstream connections per pool (streams; own calls); excess requests queue (default 64)').env('REGSHIM_UPSTREAM_CONNECTIONS'))
    .addOption(new Option('--max-client-connections <n>', 'client connections held at once (default 1024)').env('REGSHIM_MAX_CLIENT_CONNECTIONS'))
    .addOption(new Option('--client-header-timeout <seconds>', 'a client must send its request head within this long (default 60)').env('REGSHIM_CLIENT_HEADER_TIMEOUT'))
    .addOption(new Option('--max-header-bytes <size>', 'largest request head; larger gets 431 (default 16KiB)').env('REGSHIM_MAX_HEADER_BYTES'))
    .addOption(new Option('--max-header-count <n>', 'most request header fields; more get 431 (default 100)').env('REGSHIM_MAX_HEADER_COUNT'))
    .addOption(new Option('--workers <n>', `processes serving requests, or auto: one per CPU, at most ${DEFAULTS.maxAutoWorkers} (default ${DEFAULTS.workers})`).env('REGSHIM_WORKERS'))
    .addOption(new Option('--auth-htpasswd <file>', 'require clients to log in with a user of this htpasswd file (bcrypt)').env('REGSHIM_AUTH_HTPASSWD'))
    .addOption(new Option('--auth-check-threads <n>', `threads checking passwords (bcrypt) off the event loop (default ${DEFAULTS.authCheckThreads})`).env('REGSHIM_AUTH_CHECK_THREADS'))
    .addOption(new Option('--auth-check-queue <n>', `password checks waiting for a thread; more get 429 (default ${DEFAULTS.authCheckQueue})`).env('REGSHIM_AUTH_CHECK_QUEUE'))
    .addOption(new Option('--auth-max-failures-per-user <n>', `failed logins per user and window; more get 429 unchecked (default ${DEFAULTS.authMaxFailuresPerUser})`).env('REGSHIM_AUTH_MAX_FAILURES_PER_USER'))
    .addOption(new Option('--auth-max-failures-per-address <n>', `failed logins per client address and window (default ${DEFAULTS.authMaxFailuresPerAddress})`).env('REGSHIM_AUTH_MAX_FAILURES_PER_ADDRESS'))
    .addOption(new Option('--auth-failure-window <seconds>', `the window of those limits (default ${DEFAULTS.authFailureWindowMs / 1000})`).env('REGSHIM_AUTH_FAILURE_WINDOW'))
    .addOption(
      new Option('--allow-repository <glob>', 'reach only repositories matching this glob (repeatable, or comma-separated)')
        .env('REGSHIM_ALLOW_REPOSITORY')
        .argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]),
    )
    .addOption(new Option('--allow-unauthenticated', 'listen beyond loopback with upstream credentials and no --auth-htpasswd (env REGSHIM_ALLOW_UNAUTHENTICATED=1)'))
    .addOption(new Option('--print-memory-budget', 'print the most memory regshim can hold with these flags, term by term, and exit'));
}

type ServeOptions = RawConfig & { printMemoryBudget?: boolean };

async function serve(opts: ServeOptions): Promise<void> {
  const raw: RawConfig = {
    ...opts,
    logFormat: opts.logFormat ?? (process.stdout.isTTY ? 'pretty' : 'json'),
    dockerConfigEnv: process.env.DOCKER_CONFIG,
    upstreamPassword: process.env.REGSHIM_UPSTREAM_PASSWORD,
    allowUnauthenticated: opts.allowUnauthenticated ?? process.env.REGSHIM_ALLOW_UNAUTHENTICATED,
  };
  const config = parseConfig(raw, { read: (path) => readFileSync(path, 'utf8') });
  if (opts.printMemoryBudget) return void process.stdout.write(formatMemoryBudget(memoryBudget(config)));
  await refuseOpenListen(config);
  const logDestination = config.logFormat === 'pretty' ? await prettyLogs() : undefined;
  if (config.workers > 1 && !isWorker()) {
    // Workers write through the primary's stdout, no terminal of their own: tell them the format.
    process.env.REGSHIM_LOG_FORMAT = config.logFormat;
    return superviseWorkers(config.workers, createLogger(config.logLevel, logDestination), { forwardSighup: config.access.htpasswd !== undefined });
  }
  // Loaded only where requests are served: a primary that only supervises workers stays small.
  const { createServer } = await import('./server.js');
  const shim = createServer(config, { version: VERSION, ...(isWorker() ? { clusterMetrics: workerMetrics() } : {}), ...(logDestination ? { logDestination } : {}) });
  if (config.access.htpasswd) {
    // Before listening, so a signal soon after start does not end the process.
    process.on('SIGHUP', () => {
      shim.log.info({ signal: 'SIGHUP' }, 'reading the htpasswd file again');
      void shim.reload();
    });
  }
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

/** The open-listen rule on every address the listen host resolves to, before anything listens. */
async function refuseOpenListen(config: Config): Promise<void> {
  // A literal was judged when the config was parsed.
  if (!mustListenOnLoopback(config) || isIP(config.listenHost) !== 0) return;
  const addresses = await lookup(config.listenHost, { all: true }).then(
    (found) => found.map((a) => a.address),
    (err: Error) => {
      throw new ConfigError(`--listen ${config.listenHost} cannot be resolved (${err.message})`);
    },
  );
  const refusal = openListenRefusal(config, config.listenHost, addresses);
  if (refusal !== undefined) throw new ConfigError(refusal);
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

interface InspectFlags extends RawConfig {
  json?: boolean;
  checkBlobs?: boolean;
  blobConcurrency?: string;
  plainHttp?: boolean;
}

/** `regshim inspect <ref>`: the cache's two forms, its sizes and problems (src/inspect/). */
async function inspect(text: string, flags: InspectFlags): Promise<void> {
  const ref = parseCacheReference(text, flags.plainHttp === true);
  if (!ref) {
    throw new ConfigError(`${JSON.stringify(text)} is not a cache reference: write host[:port]/name:tag, host[:port]/name@sha256:..., or http(s)://host/v2/<name>/manifests/<ref>`);
  }
  const config = parseConfig(registryRaw(flags, ref.origin.origin), { read: (path) => readFileSync(path, 'utf8') });
  const concurrency = parseCount('--blob-concurrency', flags.blobConcurrency, 8);
  const { runInspect } = await import('./inspect/run.js');
  process.exitCode = await runInspect(config, ref, { checkBlobs: flags.checkBlobs === true, concurrency }, terminalOutput(flags.json === true));
}

interface DoctorFlags extends RawConfig {
  repository?: string;
  regshim?: string;
  json?: boolean;
}

/** `regshim doctor`: will regshim work in front of this registry, in this repository (src/doctor/)? */
async function doctor(flags: DoctorFlags): Promise<void> {
  const config = parseConfig(registryRaw(flags, flags.upstream ?? ''), { read: (path) => readFileSync(path, 'utf8') });
  const repository = flags.repository ?? '';
  if (parseRoute(`/v2/${repository}/tags/list`).kind !== 'tags') {
    throw new ConfigError(`--repository ${JSON.stringify(repository)} must name a repository to probe, like team/app: doctor pushes a small cache there and removes it`);
  }
  let regshim: URL | undefined;
  if (flags.regshim !== undefined) {
    regshim = URL.canParse(flags.regshim) ? new URL(flags.regshim) : undefined;
    if (!regshim || !/^https?:$/.test(regshim.protocol)) throw new ConfigError(`--regshim ${JSON.stringify(flags.regshim)} must be the URL of a running regshim, like http://127.0.0.1:5000`);
  }
  const { runDoctor } = await import('./doctor/run.js');
  process.exitCode = await runDoctor(config, { repository, regshim }, terminalOutput(flags.json === true));
}

/** The server's settings for reaching a registry, with what only the environment holds. */
function registryRaw(flags: RawConfig, upstream: string): RawConfig {
  return { ...flags, upstream, dockerConfigEnv: process.env.DOCKER_CONFIG, upstreamPassword: process.env.REGSHIM_UPSTREAM_PASSWORD };
}

/** A report for a person on a terminal (colored unless NO_COLOR), JSON with --json or when stdout is not one. */
function terminalOutput(json: boolean) {
  const tty = process.stdout.isTTY === true;
  return { write: (text: string) => void process.stdout.write(text), json: json || !tty, color: tty && process.env.NO_COLOR === undefined };
}

export async function main(argv: string[]): Promise<void> {
  const program = new Command('regshim')
    .description('Registry proxy that stores BuildKit index-style caches as OCI image manifests')
    .version(VERSION, '--version')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  serveOptions(program.command('serve', { isDefault: true }).description('run the proxy (the default command)'))
    .exitOverride()
    .action(async (opts: ServeOptions) => serve(opts));
  program
    .command('convert <file>')
    .description('print the OCI image manifest regshim stores for a cache index file')
    .option('--index-media-type <type>', 'media type of the index layer')
    .exitOverride()
    .action((file: string, opts: { indexMediaType?: string }) => convert(file, opts.indexMediaType));
  registryOptions(
    program
      .command('inspect <ref>')
      .description('show a cache as stored upstream and as a client gets it, with its problems; e.g. 127.0.0.1:5000/team/app:cache (exit 0: whole and importable, 1: a problem, 2: bad usage)'),
  )
    .option('--json', 'JSON for tools (the default when stdout is not a terminal)')
    .option('--check-blobs', 'HEAD every blob of the cache and name the missing ones')
    .option('--blob-concurrency <n>', 'HEADs in flight at once for --check-blobs (default 8)')
    .option('--plain-http', 'reach host:port/name:tag over http (the default for loopback hosts)')
    .exitOverride()
    .action(async (ref: string, flags: InspectFlags) => inspect(ref, flags));
  registryOptions(
    program
      .command('doctor')
      .description('check that regshim will work in front of a registry: reach, TLS, auth, pull and push, and which cache forms it accepts, probed in --repository and removed after (exit 0: it will, 1: not yet, 2: bad usage)')
      .addOption(new Option('--upstream <url>', 'the registry, e.g. https://registry.example.com').env('REGSHIM_UPSTREAM')),
  )
    .requiredOption('--repository <name>', 'repository to probe with a small cache (removed after), e.g. team/app')
    .option('--regshim <url>', 'a running regshim to ask for its version, settings and readiness')
    .option('--json', 'JSON for tools (the default when stdout is not a terminal)')
    .exitOverride()
    .action(async (flags: DoctorFlags) => doctor(flags));
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
