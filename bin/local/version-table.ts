import { formatVersion, type CompositeVersion, type HistoryEntry } from '../../lambdas/core/index.ts';

export interface VersionTableRow {
  readonly stage: 'E' | 'M' | 'C';
  readonly identifier: string;
  readonly comment: string;
}

/**
 * The table of Glance's zero-downtime upgrade document, rebuilt from the history table: the composite version the
 * database carried after each step that completed, starting from the version it had before the run (`before`: an
 * upgrade to the next release starts from the last one's expand and contract heads).
 */
export function versionTable(history: readonly HistoryEntry[], before: CompositeVersion): VersionTableRow[] {
  let version: CompositeVersion = before;
  const completed = history.filter((h) => h.outcome === 'succeeded');
  return completed.map((entry, index) => {
    if (entry.phase === 'expand') version = { ...version, expand: entry.stepId };
    if (entry.phase === 'contract') version = { ...version, contract: entry.stepId };
    const stage = entry.phase === 'expand' ? 'E' : entry.phase === 'migrate' ? 'M' : 'C';
    const comment =
      index === 0 ? 'upgrade begins' : entry.phase === 'migrate' ? `${entry.stepId} occurs` : index === completed.length - 1 ? 'upgrade completed' : '';
    return { stage, identifier: formatVersion(version), comment };
  });
}
