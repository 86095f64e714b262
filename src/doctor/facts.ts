// doctor's verdict from what it observed: each check passed or failed, with what to do
// about each failure, and the stored form regshim would choose. Pure.
import { formById, knownForms } from '../inspect/forms.js';
import type { ChallengeFacts, CredentialFacts, Reach, RegshimFacts, TlsFacts } from './gather.js';
import type { ProbeRun } from './probes.js';

export interface DoctorObservations {
  upstream: string;
  repository: string;
  reach: Reach;
  tls: TlsFacts | undefined;
  challenge: ChallengeFacts;
  credentials: CredentialFacts;
  /** undefined when the registry could not be reached or read. */
  probes: ProbeRun | undefined;
  regshim: RegshimFacts | undefined;
}

/** Stable names: tools match on them (README, "Inspect and doctor"). */
export type CheckName = 'reach' | 'tls' | 'credentials' | 'pull' | 'push' | 'stored-form' | 'cleanup' | 'regshim';

export interface Finding {
  check: CheckName;
  severity: 'error' | 'warning';
  message: string;
  fix: string;
}

export interface DoctorReport extends DoctorObservations {
  /** The form regshim would store caches in; undefined when the registry takes none. */
  storedForm: string | undefined;
  findings: Finding[];
}

/** Of the forms the registry accepted, the one regshim stores: the first regshim writes. */
export function chooseStoredForm(accepted: readonly string[]): string | undefined {
  return knownForms().find((f) => f.storedByRegshim && accepted.includes(f.id))?.id;
}

export function doctorFacts(o: DoctorObservations): DoctorReport {
  const findings: Finding[] = [];
  const fail = (check: CheckName, message: string, fix: string) => findings.push({ check, severity: 'error', message, fix });
  if (!o.reach.ok) fail('reach', o.reach.error ?? 'the registry cannot be reached', 'check the URL, and that this machine reaches the registry (DNS, proxy, firewall)');
  if (o.tls && !o.tls.trusted) fail('tls', `the registry's certificate is not trusted: ${o.tls.error ?? 'unknown reason'}`, 'give its CA bundle with --upstream-ca <file>');
  if (o.challenge.scheme !== 'none' && o.credentials.source === undefined) {
    fail('credentials', `the registry asks for ${o.challenge.scheme === 'bearer' ? 'Bearer tokens' : 'Basic credentials'} and none are configured`, 'give --docker-config <dir>, or --upstream-username with --upstream-password-file, as regshim will run with');
  }
  // Unreached, access cannot be told: the reach failure is the one to fix.
  if (o.reach.ok && (o.credentials.source !== undefined || o.challenge.scheme === 'none')) {
    if (!o.credentials.pull.ok) fail('pull', `no read access to ${o.repository}: ${o.credentials.pull.detail}`, `grant the credentials pull on ${o.repository}`);
    if (!o.credentials.push.ok) fail('push', `no push token for ${o.repository}: ${o.credentials.push.detail}`, `grant the credentials push on ${o.repository}`);
  }
  const probes = o.probes;
  if (probes && !probes.upload.ok) {
    const quoted = probes.upload.refusal ? ` ${probes.upload.refusal.code}: ${probes.upload.refusal.message}` : '';
    fail('push', `uploading a blob to ${o.repository} answered ${probes.upload.status}${quoted}`, `grant the credentials push on ${o.repository}`);
  }
  const accepted = probes?.results.filter((r) => r.accepted).map((r) => r.form) ?? [];
  const storedForm = chooseStoredForm(accepted);
  if (probes?.upload.ok && storedForm === undefined) {
    const refusals = probes.results.filter((r) => !r.accepted && formById(r.form)?.storedByRegshim).map((r) => `${r.label}: ${r.status}${r.refusal ? ` ${r.refusal.code}: ${r.refusal.message}` : ''}`);
    fail('stored-form', `the registry refuses every form regshim stores (${refusals.join('; ')})`, 'allow-list the media types of the refused form on the registry (Quay: ADDITIONAL_OCI_ARTIFACT_TYPES; GitLab: its supported media types), or --index-media-type with a type it allows');
  }
  for (const left of probes?.leftovers ?? []) {
    findings.push({
      check: 'cleanup',
      severity: 'warning',
      message: `left in ${o.repository}: ${left.what} (DELETE answered ${left.status}${left.refusal ? ` ${left.refusal.code}: ${left.refusal.message}` : ''})`,
      fix: 'the registry forbids DELETE: remove it with the registry’s own tools, or let its garbage collection or lifecycle policy take it',
    });
  }
  if (o.regshim && !(o.regshim.reachable && o.regshim.ready)) {
    fail('regshim', `regshim at ${o.regshim.url}: ${o.regshim.readyDetail}`, o.regshim.reachable ? 'check its --upstream and credentials: its log says what fails' : 'start regshim, or check the URL given to --regshim');
  }
  if (o.regshim?.upstream !== undefined && o.regshim.upstream !== o.upstream) {
    findings.push({ check: 'regshim', severity: 'warning', message: `regshim at ${o.regshim.url} fronts ${o.regshim.upstream}, not ${o.upstream}: these checks are not about it`, fix: `run doctor with --upstream ${o.regshim.upstream}, or start regshim with --upstream ${o.upstream}` });
  }
  return { ...o, storedForm, findings };
}

/** regshim will work in front of this registry (exit 0). */
export function isWorkable(report: DoctorReport): boolean {
  return report.findings.every((f) => f.severity !== 'error');
}
