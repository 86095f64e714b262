// The inspect report for a person at a terminal, or as JSON for tools (its shape is pinned
// by tests and documented in docs/inspect-and-doctor.md). Pure.
import { type InspectReport, isHealthy } from './facts.js';
import { type Paint, bytes, jsonText, labelled, paint } from '../report/text.js';

export const INSPECT_SCHEMA = 'regshim.inspect/v1';

export function inspectJson(report: InspectReport): string {
  const doc = {
    schema: INSPECT_SCHEMA,
    ok: isHealthy(report),
    reference: report.reference,
    stored: report.stored,
    served: report.served,
    layers: report.layers,
    cacheBytes: report.cacheBytes,
    newestLayer: report.newestLayer,
    importedBy: report.importedBy,
    blobs: report.blobs,
    problems: report.problems,
  };
  return jsonText(doc);
}

export function inspectText(report: InspectReport, color: boolean): string {
  const p: Paint = paint(color);
  const form = (f: InspectReport['stored']) => `${f.label}${f.made ? ', made by regshim' : ''}\n${f.digest}, ${bytes(f.size)}`;
  const versions = (v: readonly string[]) => (v.length === 0 ? 'none' : v.join(', '));
  const rows: [string, string][] = [
    ['stored upstream', form(report.stored)],
    ['a client gets', report.served ? form(report.served) : p.red('nothing (see problems)')],
    ['layers', `${report.layers} and the cacheconfig, ${bytes(report.cacheBytes)} in all`],
    ['newest layer', report.newestLayer ?? 'not recorded'],
    ['BuildKit imports', `through regshim: ${versions(report.importedBy.throughRegshim)}\nfrom the registry directly: ${versions(report.importedBy.fromRegistry)}`],
  ];
  if (report.blobs) {
    const { checked, missing, records } = report.blobs;
    const lost = records ? `, ${records.losingLayers} of ${records.records} cache records lose layers` : '';
    rows.push(['blobs', missing.length === 0 && report.blobs.unchecked.length === 0 ? p.green(`all ${checked} present`) : p.red(`${missing.length} of ${checked} missing${lost}${missing.map((d) => `\n${d}`).join('')}`)]);
  }
  const problems = report.problems.map((problem) => `${problem.severity === 'error' ? p.red('error') : p.yellow('warning')} ${problem.message}`);
  rows.push(['problems', problems.length === 0 ? p.green('none') : problems.join('\n')]);
  const verdict = isHealthy(report) ? p.green('whole and importable') : p.red('problems found');
  return `${p.bold(report.reference)}: ${verdict}\n${labelled(rows)}`;
}
