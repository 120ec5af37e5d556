import type { Catalog } from '../catalog/step.ts';
import type { GateReason } from '../errors.ts';
import type { ReadOnlySession } from '../state/engine-transaction.ts';
import type { Inspection } from './inspect.ts';
import { pendingRows } from './pending-query.ts';

/**
 * Why contract may not run yet; empty when it may. Pending queries are asked of every migrate step of a release
 * that still has contract steps to run: rows the old release wrote after a migration finished would otherwise be
 * lost when contract drops the old columns.
 */
export async function contractGates(
  tx: ReadOnlySession,
  catalog: Catalog,
  inspection: Inspection,
  drainConfirmed: boolean,
): Promise<GateReason[]> {
  const reasons: GateReason[] = [];
  const { expand, migrate, contract } = inspection.pending;
  if (expand.length > 0) reasons.push({ kind: 'expand-pending', steps: expand.map((s) => s.id) });
  if (migrate.length > 0) reasons.push({ kind: 'migrate-unfinished', steps: migrate.map((s) => s.id) });
  const releasesToContract = new Set(contract.map((s) => s.release));
  for (const step of catalog.steps) {
    if (step.phase !== 'migrate' || !releasesToContract.has(step.release) || migrate.includes(step)) continue;
    const rows = await pendingRows(tx, step);
    if (rows !== undefined && rows > 0) reasons.push({ kind: 'pending-rows', stepId: step.id, rows });
  }
  if (!drainConfirmed) reasons.push({ kind: 'not-drained' });
  return reasons;
}
