// What every nginx started here shares (the ingress in the tests, the anchor in
// `npm run bench`): an nginx.conf that keeps everything nginx writes inside one folder.
// Node's own imports only, so that the bench can load this file as it is.
import { join } from 'node:path';

/** A path inside `dir`, quoted for nginx.conf. */
export function confPath(dir: string): (name: string) => string {
  return (name) => JSON.stringify(join(dir, name));
}

/**
 * nginx.conf around the lines of its `http` block: the pid, the error log and every temp
 * path in `dir`. nginx started as root runs its workers as nobody: `dir` must let them in.
 */
export function nginxConf(dir: string, o: { workers: string; errorLevel: string; connections: number; http: string }): string {
  const p = confPath(dir);
  return `worker_processes ${o.workers};
pid ${p('nginx.pid')};
error_log ${p('error.log')} ${o.errorLevel};
events { worker_connections ${o.connections}; }
http {
  access_log off;
  client_body_temp_path ${p('client_body')};
  proxy_temp_path ${p('proxy')};
  fastcgi_temp_path ${p('fastcgi')};
  uwsgi_temp_path ${p('uwsgi')};
  scgi_temp_path ${p('scgi')};
${o.http.trimEnd()}
}
`;
}
