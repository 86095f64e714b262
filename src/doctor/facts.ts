// doctor's verdict from what it observed: each check passed or failed, with what to do
// about each failure, and the stored form regshim would choose. Pure.
import { formById, knownForms } from '../inspect/forms.js';
import type { Access, ChallengeFacts, CredentialFacts, Reach, RegshimFacts, TlsFacts } from './gather.js';
import type { ProbeResult, ProbeRun } from './probes.js';
import type { CacheFormMode } from '../cache/forms/form-choice.js';

export interface DoctorObservations {
  upstream: string;
  repository: string;
  /** --cache-form: how regshim chooses its stored form. */
  cacheForm: CacheFormMode;
  reach: Reach;
  tls: TlsFacts | undefined;
  challenge: ChallengeFacts;
  credentials: CredentialFacts;
  /** undefined when the registry could not be reached or read. */
  probes: ProbeRun | undefined;
  regshim: RegshimFacts | undefined;
}

/** Stable names: tools match on them (docs/inspect-and-doctor.md). */
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

/**
 * The form regshim would store caches in, by --cache-form (cache/forms/form-choice.ts): buildkit or
 * image, that form if accepted; auto, BuildKit's form, or the image form when the registry
 * refused BuildKit's for its media types (a refusal for any other reason does not switch).
 */
export function chooseStoredForm(mode: CacheFormMode, results: readonly ProbeResult[]): string | undefined {
  const written = (as: 'buildkit' | 'image') => {
    const id = knownForms().find((f) => f.writtenAs === as)?.id;
    return results.find((r) => r.form === id);
  };
  const buildkit = written('buildkit');
  const image = written('image');
  if (mode !== 'image' && buildkit?.accepted) return buildkit.form;
  if (mode === 'buildkit' || !image?.accepted) return undefined;
  if (mode === 'image') return image.form;
  return buildkit?.mediaTypes !== undefined ? image.form : undefined;
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
    // A refused upload says so itself, below.
    if (!o.credentials.push.ok && o.credentials.pull.ok && o.probes?.upload.ok !== false) fail('push', `no push token for ${o.repository}: ${o.credentials.push.detail}`, `grant the credentials push on ${o.repository}`);
  }
  const probes = o.probes;
  if (probes && !probes.upload.ok) {
    const quoted = probes.upload.refusal ? ` ${probes.upload.refusal.code}: ${probes.upload.refusal.message}` : '';
    fail('push', `uploading a blob to ${o.repository} answered ${probes.upload.status}${quoted}`, `grant the credentials push on ${o.repository}`);
  }
  const storedForm = probes ? chooseStoredForm(o.cacheForm, probes.results) : undefined;
  if (probes?.upload.ok && storedForm === undefined) {
    const refusals = probes.results.filter((r) => !r.accepted && formById(r.form)?.writtenAs !== undefined).map((r) => `${r.label}: ${refusalText(r)}`);
    const imageAccepted = probes.results.some((r) => r.accepted && formById(r.form)?.writtenAs === 'image');
    fail(
      'stored-form',
      `with --cache-form ${o.cacheForm}, regshim has no form this registry stores (${refusals.join('; ')})`,
      imageAccepted ? 'run regshim with --cache-form image: the registry stores the image form' : 'allow the refused media types on the registry (Quay: ADDITIONAL_OCI_ARTIFACT_TYPES; GitLab: its supported media types), or its policy for the repository',
    );
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

/** A refused probe in the registry's words: status, code and message, and its media-type reason when that says more (GitLab's is in `detail`). */
export function refusalText(r: ProbeResult): string {
  const words = r.refusal ? ` ${r.refusal.code}: ${r.refusal.message}` : '';
  const more = r.mediaTypes !== undefined && r.mediaTypes !== r.refusal?.message ? ` (${r.mediaTypes})` : '';
  return `${r.status}${words}${more}`;
}

/** regshim will work in front of this registry (exit 0). */
export function isWorkable(report: DoctorReport): boolean {
  return report.findings.every((f) => f.severity !== 'error');
}

/**
 * Push as the probes proved it. A Basic header, unlike a token, is had without asking the
 * registry, so it says nothing until an upload is accepted; without probes (read access
 * refused), push was not tried.
 */
export function provenPush(credentials: CredentialFacts, probes: ProbeRun | undefined): Access {
  if (!credentials.push.ok) return credentials.push;
  if (!probes) return credentials.pull.ok ? credentials.push : { ok: false, detail: `not tried: read access was refused (${credentials.pull.detail})` };
  if (probes.upload.ok) return credentials.push;
  return { ok: false, detail: `a blob upload answered ${probes.upload.status}${probes.upload.refusal ? ` ${probes.upload.refusal.code}` : ''}` };
}
