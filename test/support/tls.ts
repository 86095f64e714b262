// A self-signed certificate for 127.0.0.1 (openssl), so https paths run on loopback.
import { readFile } from 'node:fs/promises';
import https from 'node:https';
import { join } from 'node:path';
import { runCommand } from './processes.js';

export interface Certificate {
  certFile: string;
  keyFile: string;
  /** PEM; self-signed, so it is its own CA. */
  pem: string;
}

export async function makeCertificate(dir: string, name = 'server'): Promise<Certificate> {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  const r = await runCommand('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', keyFile, '-out', certFile,
  ]);
  if (r.code !== 0) throw new Error(`openssl exited ${r.code}: ${r.stderr}`);
  return { certFile, keyFile, pem: await readFile(certFile, 'utf8') };
}

/** GET over https trusting `ca`; resolves status and body. */
export function httpsGet(url: string, ca: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      })
      .on('error', reject);
  });
}
