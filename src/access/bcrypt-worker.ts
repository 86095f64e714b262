// One password check thread: bcrypt costs tens to hundreds of milliseconds of CPU by
// design, which on the event loop would stall every other request (password-checks.ts).
import { parentPort } from 'node:worker_threads';
import bcrypt from 'bcryptjs';

parentPort?.on('message', (job: { id: number; password: string; hash: string }) => {
  parentPort?.postMessage({ id: job.id, ok: bcrypt.compareSync(job.password, job.hash) });
});
