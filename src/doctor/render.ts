// The doctor report for a person at a terminal, or as JSON for tools (its shape is pinned by
// tests and documented in docs/inspect-and-doctor.md). Pure.
import { type Paint, jsonText, labelled, paint } from '../report/text.js';
import { type DoctorReport, isWorkable, refusalText } from './facts.js';

export const DOCTOR_SCHEMA = 'regshim.doctor/v1';

export function doctorJson(report: DoctorReport): string {
  const doc = {
    schema: DOCTOR_SCHEMA,
    ok: isWorkable(report),
    upstream: report.upstream,
    repository: report.repository,
    reach: report.reach,
    tls: report.tls,
    challenge: report.challenge,
    credentials: report.credentials,
    cacheForm: report.cacheForm,
    probes: report.probes && { upload: report.probes.upload, forms: report.probes.results, leftovers: report.probes.leftovers },
    storedForm: report.storedForm,
    regshim: report.regshim,
    findings: report.findings,
  };
  return jsonText(doc);
}

export function doctorText(report: DoctorReport, color: boolean): string {
  const p: Paint = paint(color);
  const mark = (ok: boolean) => (ok ? p.green('ok') : p.red('failed'));
  const rows: [string, string][] = [
    ['reachable', report.reach.ok ? `${mark(true)} (GET /v2/ answered ${report.reach.status})` : `${mark(false)} ${report.reach.error ?? ''}`],
    ['TLS', report.tls ? `${mark(report.tls.trusted)} ${report.tls.protocol ?? ''}${report.tls.validTo ? `, certificate valid to ${report.tls.validTo}` : ''}${report.tls.error ? `, ${report.tls.error}` : ''}` : 'none (plain http)'],
    ['auth challenge', report.challenge.scheme === 'none' ? 'none' : `${report.challenge.scheme}${report.challenge.realm ? ` realm=${report.challenge.realm}` : ''}${report.challenge.service ? ` service=${report.challenge.service}` : ''}`],
    ['credentials', report.credentials.source ?? 'none configured'],
    ['pull', `${mark(report.credentials.pull.ok)} ${report.credentials.pull.detail}`],
    ['push', `${mark(report.credentials.push.ok && (report.probes?.upload.ok ?? true))} ${report.credentials.push.detail}`],
  ];
  if (report.probes) {
    const forms = report.probes.results.map((r) => `${r.accepted ? p.green('accepted') : p.red('refused ')} ${r.label}${r.accepted ? '' : ` (${refusalText(r)})`}`);
    rows.push(['cache forms', forms.length > 0 ? forms.join('\n') : 'not probed']);
    rows.push(['clean-up', report.probes.leftovers.length === 0 ? p.green('nothing left behind') : p.yellow(report.probes.leftovers.map((l) => l.what).join('\n'))]);
  }
  rows.push(['regshim stores', report.storedForm ? `${p.green(report.storedForm)} (--cache-form ${report.cacheForm})` : p.red(`nothing with --cache-form ${report.cacheForm}`)]);
  if (report.regshim) {
    const r = report.regshim;
    rows.push(['regshim', `${mark(r.reachable && r.ready)} ${r.url}${r.version ? ` version ${r.version}` : ''}: ${r.readyDetail}`]);
  }
  const findings = report.findings.map((f) => `${f.severity === 'error' ? p.red('error') : p.yellow('warning')} ${f.message}\n  ${p.dim('fix:')} ${f.fix}`);
  const verdict = isWorkable(report) ? p.green('regshim will work in front of it') : p.red('regshim will not work in front of it yet');
  return `${p.bold(`${report.upstream} (${report.repository})`)}: ${verdict}\n${labelled(rows)}${findings.length > 0 ? `\n${findings.join('\n')}\n` : ''}`;
}
