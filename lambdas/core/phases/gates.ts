import type { Catalog } from '../catalog/step.ts';
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
): Promise<string[]> {
  const reasons: string[] = [];
  const { expand, migrate, contract } = inspection.pending;
  if (expand.length > 0) reasons.push(`expand steps are not applied yet: ${expand.map((s) => s.id).join(', ')}`);
  if (migrate.length > 0) reasons.push(`migrations are not finished: ${migrate.map((s) => s.id).join(', ')}`);
  const releasesToContract = new Set(contract.map((s) => s.release));
  for (const step of catalog.steps) {
    if (step.phase !== 'migrate' || !releasesToContract.has(step.release) || migrate.includes(step)) continue;
    const rows = await pendingRows(tx, step);
    if (rows !== undefined && rows > 0) {
      reasons.push(`${step.id} finished, but its pending query finds ${rows} rows still to migrate (old-release writes after it finished; run the upgrade again and migrate will sweep them)`);
    }
  }
  if (!drainConfirmed) reasons.push('the old release has not been confirmed drained (tasks of it may still be running)');
  return reasons;
}
