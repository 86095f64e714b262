import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config.js';
import { isLoopback, openListenRefusal } from '../../src/config-auth.js';
import { parseChallenge } from '../../src/registry/auth/challenge.js';
import { lookupDockerConfig, parseHelperOutput } from '../../src/registry/auth/docker-config.js';
import { repositoriesOf, scopeOf, scopeOfPath } from '../../src/registry/auth/scope.js';
import { parseRoute } from '../../src/registry/routes.js';

describe('parseChallenge', () => {
  it.each([
    ['Basic realm="https://123.dkr.ecr.eu-west-1.amazonaws.com/",service="ecr.amazonaws.com"', { scheme: 'basic', realm: 'https://123.dkr.ecr.eu-west-1.amazonaws.com/' }],
    [
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:team/app:pull,push"',
      { scheme: 'bearer', realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:team/app:pull,push' },
    ],
    ['bearer realm=https://q/v2/auth', { scheme: 'bearer', realm: 'https://q/v2/auth', service: undefined, scope: undefined }],
    ['Negotiate, Bearer realm="https://r/t", service="s"', { scheme: 'bearer', realm: 'https://r/t', service: 's', scope: undefined }],
    ['Bearer realm="a\\"b"', { scheme: 'bearer', realm: 'a"b', service: undefined, scope: undefined }],
  ])('%s', (header, expected) => {
    expect(parseChallenge(header)).toEqual(expected);
  });

  it.each([[undefined], [''], ['Bearer service="no realm"'], ['Negotiate abc']])('%j has no usable challenge', (header) => {
    expect(parseChallenge(header)).toBeUndefined();
  });
});

describe('scopeOf', () => {
  it.each([
    ['GET', '/v2/', []],
    ['GET', '/v2/_catalog', ['registry:catalog:*']],
    ['GET', '/v2/team/app/manifests/latest', ['repository:team/app:pull']],
    ['HEAD', '/v2/team/app/blobs/sha256:abc', ['repository:team/app:pull']],
    ['GET', '/v2/team/app/tags/list?n=10', ['repository:team/app:pull']],
    ['PUT', '/v2/team/app/manifests/cache', ['repository:team/app:pull,push']],
    ['POST', '/v2/team/app/blobs/uploads/', ['repository:team/app:pull,push']],
    ['PATCH', '/v2/team/app/blobs/uploads/uuid?_state=x', ['repository:team/app:pull,push']],
    ['DELETE', '/v2/team/app/manifests/sha256:abc', ['repository:team/app:delete']],
    ['POST', '/v2/team/app/blobs/uploads/?mount=sha256:abc&from=base/img', ['repository:base/img:pull', 'repository:team/app:pull,push']],
    ['POST', '/v2/team/app/blobs/uploads/?mount=sha256:abc&from=team/app', ['repository:team/app:pull,push']],
    ['GET', '/v2/team/app/blobs/uploads/uuid?from=other/x', ['repository:team/app:pull']],
  ])('%s %s', (method, path, expected) => {
    expect(scopeOfPath(method, path)).toEqual(expected);
  });

  it('agrees with the parsed route', () => {
    expect(scopeOf('GET', parseRoute('/v2/a/b/manifests/x'), new URLSearchParams())).toEqual(['repository:a/b:pull']);
  });
});

describe('lookupDockerConfig: by the upstream host, in docker order', () => {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const config = JSON.stringify({
    auths: {
      'registry.example': { auth: b64('user:pa:ss') },
      'https://index.docker.io/v1/': { auth: b64('hub:tok') },
      'acr.azurecr.io': { identitytoken: 'refresh-me' },
      'localhost:5000': { auth: b64('wrong:host') },
    },
    credHelpers: { '123456789012.dkr.ecr.eu-west-1.amazonaws.com': 'ecr-login' },
  });
  it.each([
    ['registry.example', { kind: 'basic', username: 'user', password: 'pa:ss', source: 'f auths' }],
    ['index.docker.io', { kind: 'basic', username: 'hub', password: 'tok', source: 'f auths' }],
    ['acr.azurecr.io', { kind: 'identity-token', token: 'refresh-me', source: 'f auths' }],
    ['123456789012.dkr.ecr.eu-west-1.amazonaws.com', { kind: 'helper', helper: 'ecr-login', source: 'f credHelpers' }],
    ['other.example', undefined],
  ])('%s', (host, expected) => {
    expect(lookupDockerConfig(config, host, 'f')).toEqual(expected);
  });

  it('credsStore answers for every host credHelpers does not name', () => {
    expect(lookupDockerConfig(JSON.stringify({ credsStore: 'pass', auths: { 'a.example': {} } }), 'a.example', 'f')).toEqual({ kind: 'helper', helper: 'pass', source: 'f credsStore' });
  });

  it('a malformed file says so without quoting it', () => {
    expect(() => lookupDockerConfig('{"auths": {"x": {"auth": "c2VjcmV0"', 'x', 'f')).toThrow(/^f is not valid JSON$/);
  });
});

describe('parseHelperOutput', () => {
  it('reads Username and Secret; <token> means an identity token', () => {
    expect(parseHelperOutput('{"ServerURL":"h","Username":"AWS","Secret":"s"}')).toEqual({ kind: 'basic', username: 'AWS', password: 's' });
    expect(parseHelperOutput('{"ServerURL":"h","Username":"<token>","Secret":"r"}')).toEqual({ kind: 'identity-token', token: 'r' });
  });
  it('never repeats what it could not read', () => {
    expect(() => parseHelperOutput('secret-value-not-json')).toThrow(/not the JSON object/);
    try {
      parseHelperOutput('secret-value-not-json');
    } catch (err) {
      expect((err as Error).message).not.toContain('secret-value');
    }
  });
});

describe('auth configuration', () => {
  const files = (map: Record<string, string>) => ({
    read: (path: string) => {
      const text = map[path];
      if (text === undefined) throw new Error('ENOENT');
      return text;
    },
  });
  const base = { upstream: 'https://r.example', upstreamUsername: 'u', upstreamPassword: 'p' };

  it.each(['0.0.0.0:5000', '10.0.0.5:5000', '[::]:5000', ':5000'])('upstream credentials, no inbound auth, listen %s: refused, and says why', (listen) => {
    expect(() => parseConfig({ ...base, listen })).toThrow(ConfigError);
    expect(() => parseConfig({ ...base, listen })).toThrow(/anyone who reaches it could read and push.*--auth-htpasswd.*--allow-unauthenticated/);
  });

  it.each(['127.0.0.1:5000', 'localhost:5000', '[::1]:5000'])('listen %s is fine without inbound auth', (listen) => {
    expect(parseConfig({ ...base, listen }).upstreamCredentials).toEqual({ kind: 'basic', username: 'u', password: 'p', source: '--upstream-username and REGSHIM_UPSTREAM_PASSWORD' });
  });

  it('--allow-unauthenticated or --auth-htpasswd lifts the rule', () => {
    expect(parseConfig({ ...base, listen: '0.0.0.0:5000', allowUnauthenticated: true }).allowUnauthenticated).toBe(true);
    const hash = '$2b$05$' + 'a'.repeat(53);
    expect(parseConfig({ ...base, listen: '0.0.0.0:5000', authHtpasswd: '/h' }, files({ '/h': `ci:${hash}\n` })).access.htpasswd?.users.get('ci')).toBe(hash);
  });

  it('without upstream credentials nothing changes: no rule, no credentials', () => {
    const config = parseConfig({ upstream: 'https://r.example', listen: '0.0.0.0:5000' });
    expect(config.upstreamCredentials).toBeUndefined();
    expect(config.access).toMatchObject({ htpasswd: undefined, allowRepositories: [] });
  });

  it.each([
    [{ upstreamUsername: 'u' }, /goes with a password/],
    [{ upstreamPasswordFile: '/missing' }, /--upstream-password-file "\/missing" cannot be read/],
    [{ dockerConfig: '/d' }, /\/d\/config.json cannot be read/],
    [{ authHtpasswd: '/h-md5' }, /line 1 is not user:bcrypt-hash/],
    [{ allowRepository: ['team/app', 'Bad Glob'] }, /--allow-repository "Bad Glob"/],
    [{ credentialHelperTimeout: '0' }, /--credential-helper-timeout "0"/],
  ])('%j is refused with a fix', (raw, message) => {
    expect(() => parseConfig({ upstream: 'https://r.example', ...raw }, files({ '/h-md5': 'ci:$apr1$abc$def\n' }))).toThrow(message);
  });

  it('--docker-config: the entry for the upstream host; an explicit config without one is an error, $DOCKER_CONFIG is not', () => {
    const f = files({ '/d/config.json': JSON.stringify({ credHelpers: { 'r.example': 'ecr-login' } }) });
    expect(parseConfig({ upstream: 'https://r.example', dockerConfig: '/d' }, f).upstreamCredentials).toEqual({ kind: 'helper', helper: 'ecr-login', source: '/d/config.json credHelpers' });
    expect(() => parseConfig({ upstream: 'https://other.example', dockerConfig: '/d' }, f)).toThrow(/has no credentials for other.example.*the upstream's, not regshim's/);
    expect(parseConfig({ upstream: 'https://other.example', dockerConfigEnv: '/d' }, f).upstreamCredentials).toBeUndefined();
    expect(parseConfig({ upstream: 'https://other.example', dockerConfigEnv: '/nowhere' }, f).upstreamCredentials).toBeUndefined();
  });

  it('--allow-repository takes repeats and commas', () => {
    expect(parseConfig({ upstream: 'https://r.example', allowRepository: ['team/*,base/**', 'x'] }).access.allowRepositories).toEqual(['team/*', 'base/**', 'x']);
  });

  it.each([['127.0.0.1', true], ['127.1.2.3', true], ['::1', true], ['::ffff:127.0.0.1', true], ['localhost', true], ['0.0.0.0', false], ['::', false], ['192.168.1.1', false]])('isLoopback(%s) = %s', (host, expected) => {
    expect(isLoopback(host)).toBe(expected);
  });

  it('a name is judged by its addresses: localhost resolving off loopback is refused, naming them', () => {
    const config = parseConfig({ ...base, listen: 'localhost:5000' });
    expect(openListenRefusal(config, 'localhost', ['127.0.0.1', '::1'])).toBeUndefined();
    expect(openListenRefusal(config, 'localhost', ['127.0.0.1', '10.0.0.5'])).toMatch(/^refusing to listen on localhost \(10\.0\.0\.5\) with upstream credentials/);
    expect(openListenRefusal({ ...config, allowUnauthenticated: true }, 'localhost', ['10.0.0.5'])).toBeUndefined();
  });
});

describe('repositoriesOf', () => {
  const upload = parseRoute('/v2/team/x/blobs/uploads/');
  it.each([
    ['mount=sha256:0&from=team/z', ['team/x', 'team/z']],
    // Distribution takes the first `from`; every one is checked, whichever it is.
    ['mount=sha256:0&from=team/z&from=other/y', ['team/x', 'team/z', 'other/y']],
    ['from=other/y', ['team/x', 'other/y']],
    ['fr%6Fm=other/y', ['team/x', 'other/y']],
    ['from=team/x', ['team/x']],
  ])('an upload with %s reaches %j', (query, expected) => {
    expect(repositoriesOf(upload, new URLSearchParams(query))).toEqual(expected);
  });

  it('a mount asks for pull on every source', () => {
    expect(scopeOfPath('POST', '/v2/team/x/blobs/uploads/?mount=sha256:0&from=team/z&from=other/y')).toEqual([
      'repository:other/y:pull',
      'repository:team/x:pull,push',
      'repository:team/z:pull',
    ]);
  });
});
