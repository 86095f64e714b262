// A real nginx terminating TLS in front of regshim, with the headers a Kubernetes ingress
// (ingress-nginx) or a cloud load balancer sends: X-Forwarded-Proto/Host/Port/For.
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { confPath, nginxConf } from './nginx-conf.js';
import { type Certificate, httpsGet, makeCertificate } from './tls.js';
import { freePort, makeTempDir, removeTempDir, startReady } from './processes.js';

export type HostMode =
  /** Host passes through unchanged, as ingress-nginx does. */
  | 'preserve-host'
  /** Host names the backend; only X-Forwarded-Host keeps the client's (proxy_pass's default). */
  | 'backend-host';

export interface Ingress {
  /** https://127.0.0.1:PORT */
  url: string;
  host: string;
  cert: Certificate;
  stop(): Promise<void>;
}

export async function startIngress(backend: string, mode: HostMode): Promise<Ingress> {
  const dir = await makeTempDir('regshim-ingress-');
  // nginx started as root runs its worker as nobody, which must reach its temp paths.
  await chmod(dir, 0o711);
  const cert = await makeCertificate(dir);
  const port = await freePort();
  const p = confPath(dir);
  const host = mode === 'preserve-host' ? '$http_host' : '$proxy_host';
  await writeFile(join(dir, 'nginx.conf'), nginxConf(dir, { workers: '1', errorLevel: 'warn', connections: 256, http: `  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${p('server.crt')};
    ssl_certificate_key ${p('server.key')};
    client_max_body_size 0;
    location / {
      proxy_pass ${backend};
      proxy_http_version 1.1;
      proxy_request_buffering off;
      proxy_set_header Host ${host};
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $http_host;
      proxy_set_header X-Forwarded-Port $server_port;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Real-IP $remote_addr;
    }
  }
` }));
  const url = `https://127.0.0.1:${port}`;
  const proc = await startReady(
    { cmd: 'nginx', args: ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], logFile: join(dir, 'nginx.out'), cwd: dir },
    {
      ready: async () => (await httpsGet(`${url}/healthz`, cert.pem).catch(() => undefined))?.status === 200,
      timeoutMs: 10_000,
      what: `nginx ingress on port ${port}`,
      cleanup: () => removeTempDir(dir),
    },
  );
  return {
    url,
    host: `127.0.0.1:${port}`,
    cert,
    async stop() {
      await proc.stop();
      await removeTempDir(dir);
    },
  };
}
