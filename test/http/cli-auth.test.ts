// The built CLI with upstream credentials: the listen rule and the real ECR helper.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Cleanup } from '../support/cleanup.js';
import { freePort, runCommand, startProcess, waitFor } from '../support/processes.js';
import { isHealthy } from '../support/regshim.js';

const bin = join(import.meta.dirname, '..', '..', 'bin', 'regshim.js');
const cleanup = new Cleanup();
afterAll(() => cleanup.run());

describe('regshim serve with upstream credentials', () => {
  it('refuses a non-loopback listen without inbound auth: exit 2, and says why', async () => {
    const r = await runCommand(process.execPath, [bin, '--upstream', 'https://r.example', '--listen', '0.0.0.0:0', '--upstream-username', 'u'], {
      env: { ...process.env, REGSHIM_UPSTREAM_PASSWORD: 'pw-cli-1234' },
      timeoutMs: 30_000,
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/refusing to listen on 0\.0\.0\.0 with upstream credentials .* and no inbound authentication/);
    expect(r.stderr).toMatch(/--auth-htpasswd/);
    expect(r.stderr + r.stdout).not.toContain('pw-cli-1234');
  });

  // A private mount namespace (unshare -rm) with its own /etc/hosts, where `localhost` names another address.
  it.each([
    ['10.99.0.1', 'an address of another machine'],
    ['0.0.0.0', 'every address'],
  ])('--listen localhost:PORT where /etc/hosts maps localhost to %s (%s): exit 2, naming the address', async (address) => {
    const dir = await cleanup.tempDir('regshim-cli-hosts-');
    const hosts = join(dir, 'hosts');
    await writeFile(hosts, `${address} localhost\n`);
    const port = await freePort();
    const script = 'mount --bind "$0" /etc/hosts && exec "$@"';
    const r = await runCommand('unshare', ['-rm', 'sh', '-c', script, hosts, process.execPath, bin, '--upstream', 'https://r.example', '--listen', `localhost:${port}`, '--upstream-username', 'u'], {
      env: { ...process.env, REGSHIM_UPSTREAM_PASSWORD: 'pw-cli-hosts-77' },
      timeoutMs: 30_000,
    });
    expect(r.stderr).toContain(`refusing to listen on localhost (${address}) with upstream credentials`);
    expect(r.code).toBe(2);
    expect(r.stderr + r.stdout).not.toContain('pw-cli-hosts-77');
  });

  it('--help lists the credential and access flags with their environment variables', async () => {
    const r = await runCommand(process.execPath, [bin, 'serve', '--help'], { timeoutMs: 30_000 });
    for (const text of [
      'REGSHIM_DOCKER_CONFIG', 'REGSHIM_UPSTREAM_USERNAME', 'REGSHIM_UPSTREAM_PASSWORD', 'REGSHIM_UPSTREAM_PASSWORD_FILE', 'REGSHIM_AUTH_HTPASSWD', 'REGSHIM_ALLOW_REPOSITORY',
      'REGSHIM_ALLOW_UNAUTHENTICATED', 'REGSHIM_CREDENTIAL_HELPER_TIMEOUT', 'REGSHIM_AUTH_CHECK_THREADS', 'REGSHIM_AUTH_CHECK_QUEUE', 'REGSHIM_AUTH_MAX_FAILURES_PER_USER',
      'REGSHIM_AUTH_MAX_FAILURES_PER_ADDRESS', 'REGSHIM_AUTH_FAILURE_WINDOW',
    ]) {
      expect(r.stdout).toContain(text);
    }
  });

  it('from the environment alone: REGSHIM_ALLOW_UNAUTHENTICATED=1 lets it listen on 0.0.0.0 with credentials', async () => {
    const dir = await cleanup.tempDir('regshim-cli-env-');
    const port = await freePort();
    const logFile = join(dir, 'regshim.log');
    const env = {
      ...process.env,
      REGSHIM_UPSTREAM: 'http://127.0.0.1:9',
      REGSHIM_LISTEN: `0.0.0.0:${port}`,
      REGSHIM_UPSTREAM_USERNAME: 'u',
      REGSHIM_UPSTREAM_PASSWORD: 'pw-env-5521',
      REGSHIM_ALLOW_UNAUTHENTICATED: '1',
      REGSHIM_ALLOW_REPOSITORY: 'team/*,base/**',
    };
    const proc = await cleanup.track(startProcess({ cmd: process.execPath, args: [bin], logFile, env }));
    await waitFor(() => isHealthy(`http://127.0.0.1:${port}`), { timeoutMs: 15_000, what: 'regshim', logFile, process: proc });
    const denied = await fetch(`http://127.0.0.1:${port}/v2/other/app/tags/list`);
    expect(denied.status).toBe(403);
    expect(await readFile(logFile, 'utf8')).not.toContain('pw-env-5521');
  });

  it('the real docker-credential-ecr-login without AWS credentials: a clear startup and /readyz error, not a hang', async () => {
    const dir = await cleanup.tempDir('regshim-ecr-');
    const host = '123456789012.dkr.ecr.eu-west-1.amazonaws.com';
    await mkdir(join(dir, 'docker'));
    await mkdir(join(dir, 'home'));
    await writeFile(join(dir, 'docker', 'config.json'), JSON.stringify({ credHelpers: { [host]: 'ecr-login' } }));
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const logFile = join(dir, 'regshim.log');
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: join(dir, 'home'), DOCKER_CONFIG: join(dir, 'docker'), AWS_EC2_METADATA_DISABLED: 'true' };
    const proc = await cleanup.track(
      startProcess({ cmd: process.execPath, args: [bin, '--upstream', `https://${host}`, '--listen', `127.0.0.1:${port}`, '--credential-helper-timeout', '5'], logFile, env }),
    );
    await waitFor(() => isHealthy(url), { timeoutMs: 15_000, what: 'regshim', logFile, process: proc });
    // Started, it says at once what failed and how to fix it.
    await waitFor(async () => (await readFile(logFile, 'utf8')).includes('upstream credentials do not work'), { timeoutMs: 10_000, what: 'the startup error', logFile });
    const line = (await readFile(logFile, 'utf8')).split('\n').find((l) => l.includes('upstream credentials do not work')) ?? '';
    expect(line).toContain(`docker-credential-ecr-login get for ${host} failed (exit 1): credentials not found in native keychain`);
    expect(line).toMatch(/IRSA/);
    const started = performance.now();
    const ready = await fetch(`${url}/readyz`);
    expect(ready.status).toBe(503);
    expect(performance.now() - started).toBeLessThan(5_000);
    const body = (await ready.json()) as { errors: { code: string; message: string }[] };
    expect(body.errors[0]?.code).toBe('UNAVAILABLE');
    expect(body.errors[0]?.message).toMatch(/docker-credential-ecr-login .* failed \(exit 1\)/);
    // A client request gets a 503 that says the same, and never waits on the network.
    const res = await fetch(`${url}/v2/team/app/manifests/latest`);
    expect(res.status).toBe(503);
  });
});
