import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';
import { ConfigError, DEFAULTS, parseConfig } from '../../src/config.js';

describe('parseConfig', () => {
  it('applies the defaults', () => {
    const config = parseConfig({ upstream: 'https://registry.example.com/' });
    expect(config.upstream.origin).toBe('https://registry.example.com');
    expect([config.listenHost, config.listenPort]).toEqual(['127.0.0.1', 5000]);
    expect(config.cacheMaxBytes).toBe(64 * 1024 * 1024);
    expect(config.maxManifestBytes).toBe(4 * 1024 * 1024);
    expect(config.indexMediaType).toBe(DEFAULTS.indexMediaType);
    expect(config.imageManifestAsIndex).toBe(true);
    expect(config.cacheForm).toBe('auto');
    expect(config.logLevel).toBe('info');
    expect([config.maxManifestBytesInFlight, config.manifestQueueTimeoutMs, config.upstreamConnections, config.maxClientConnections]).toEqual([64 * 1024 * 1024, 30_000, 64, 1024]);
    expect([config.clientHeaderTimeoutMs, config.maxHeaderBytes, config.maxHeaderCount]).toEqual([60_000, 16 * 1024, 100]);
    expect(config.workers).toBe(1);
    expect(Object.isFrozen(config)).toBe(true);
  });

  it.each([
    [{ listen: '0.0.0.0:8080' }, 'listenHost', '0.0.0.0'],
    [{ listen: '[::1]:8080' }, 'listenHost', '::1'],
    [{ listen: ':8080' }, 'listenHost', '0.0.0.0'],
    [{ cacheMaxBytes: '64MiB' }, 'cacheMaxBytes', 64 * 1024 * 1024],
    [{ cacheMaxBytes: '1048576' }, 'cacheMaxBytes', 1048576],
    [{ maxManifestBytes: '512k' }, 'maxManifestBytes', 512 * 1024],
    [{ upstreamTimeout: '0.5' }, 'upstreamTimeoutMs', 500],
    [{ clientIdleTimeout: '30' }, 'clientIdleTimeoutMs', 30_000],
    [{ logLevel: 'debug' }, 'logLevel', 'debug'],
    [{ maxManifestBytesInFlight: '1g' }, 'maxManifestBytesInFlight', 1024 ** 3],
    [{ manifestQueueTimeout: '2.5' }, 'manifestQueueTimeoutMs', 2500],
    [{ upstreamConnections: '8' }, 'upstreamConnections', 8],
    [{ maxClientConnections: ' 10 ' }, 'maxClientConnections', 10],
    [{ clientHeaderTimeout: '5' }, 'clientHeaderTimeoutMs', 5000],
    [{ maxHeaderBytes: '8KiB' }, 'maxHeaderBytes', 8192],
    [{ maxHeaderCount: '50' }, 'maxHeaderCount', 50],
    [{ indexMediaType: 'application/vnd.gitlab.cache+json' }, 'indexMediaType', 'application/vnd.gitlab.cache+json'],
    [{ workers: '3' }, 'workers', 3],
    [{ workers: '1' }, 'workers', 1],
    [{ workers: 'auto' }, 'workers', Math.min(availableParallelism(), DEFAULTS.maxAutoWorkers)],
  ])('reads %j', (raw, key, value) => {
    expect(parseConfig({ upstream: 'http://127.0.0.1:5001', ...raw })[key as keyof ReturnType<typeof parseConfig>]).toEqual(value);
  });

  it.each([
    [{}, /--upstream is required/],
    [{ upstream: 'registry.example.com' }, /must start with http:\/\/ or https:\/\/|is not a URL/],
    [{ upstream: 'ftp://x' }, /must start with http/],
    [{ upstream: 'https://x/some/path' }, /origin only/],
    [{ upstream: 'https://user:pw@x' }, /origin only/],
    [{ upstream: 'http://x', listen: '5000' }, /--listen "5000" must be host:port/],
    [{ upstream: 'http://x', listen: 'h:99999' }, /--listen/],
    [{ upstream: 'http://x', logLevel: 'loud' }, /--log-level "loud" is not one of/],
    [{ upstream: 'http://x', cacheMaxBytes: 'lots' }, /--cache-max-bytes "lots" must be a positive size/],
    [{ upstream: 'http://x', maxManifestBytes: '0' }, /--max-manifest-bytes/],
    [{ upstream: 'http://x', upstreamTimeout: '-1' }, /--upstream-timeout "-1" must be a positive number of seconds/],
    [{ upstream: 'http://x', tlsCert: 'c.pem' }, /--tls-cert and --tls-key go together/],
    [{ upstream: 'http://x', indexMediaType: 'not a type' }, /--index-media-type/],
    [{ upstream: 'http://x', imageManifestAsIndex: 'yes' }, /--image-manifest-as-index "yes" must be on or off/],
    [{ upstream: 'http://x', cacheForm: 'quay' }, /--cache-form "quay" must be auto/],
    [{ upstream: 'http://x', maxManifestBytesInFlight: '1MiB' }, /--max-manifest-bytes-in-flight \(1048576\) must be at least --max-manifest-bytes/],
    [{ upstream: 'http://x', upstreamConnections: '0' }, /--upstream-connections "0" must be a positive whole number/],
    [{ upstream: 'http://x', maxClientConnections: '1.5' }, /--max-client-connections "1.5" must be a positive whole number/],
    [{ upstream: 'http://x', maxHeaderCount: 'many' }, /--max-header-count "many"/],
    [{ upstream: 'http://x', clientHeaderTimeout: '0' }, /--client-header-timeout "0" must be a positive number of seconds/],
    [{ upstream: 'http://x', workers: '0' }, /--workers "0" must be auto or a whole number from 1 to 256/],
    [{ upstream: 'http://x', workers: 'many' }, /--workers "many"/],
    [{ upstream: 'http://x', upstreamCa: '/nonexistent.pem' }, /--upstream-ca "\/nonexistent.pem" cannot be read/],
  ])('refuses %j with a message that says how to fix it', (raw, message) => {
    expect(() => parseConfig(raw, { read: () => { throw new Error('ENOENT'); } })).toThrow(ConfigError);
    expect(() => parseConfig(raw, { read: () => { throw new Error('ENOENT'); } })).toThrow(message);
  });

  it('reads PEM files through the given reader', () => {
    const config = parseConfig({ upstream: 'https://x', upstreamCa: 'ca.pem', tlsCert: 'c.pem', tlsKey: 'k.pem' }, { read: (p) => `PEM of ${p}` });
    expect([config.upstreamCa, config.tlsCert, config.tlsKey]).toEqual(['PEM of ca.pem', 'PEM of c.pem', 'PEM of k.pem']);
  });
});
