import type { SqlClient } from '../sql/sql-client.ts';
import { formatVersion } from '../state/composite-version.ts';
import { readState } from '../state/database-state.ts';
import { readHistory } from '../state/history.ts';
import { engineBounds, readTransaction } from '../state/engine-transaction.ts';
import { releaseLease } from '../state/lease.ts';
import { resolveSettings } from '../settings.ts';
import type { RunSummary, UpgradePlan } from './task-contract.ts';

export type { RunSummary } from './task-contract.ts';

/** The last state: releases the lease and summarises the run from the history table (the source of truth). */
export async function finishUpgrade(client: SqlClient, plan: UpgradePlan): Promise<RunSummary> {
  const bounds = engineBounds(resolveSettings(plan.settings));
  await releaseLease(client, plan.runId, bounds);
  const { history: all, state } = await readTransaction(client, bounds, 'reading the history of the run', async (tx) => ({
    history: await readHistory(tx, plan.runId),
    state: await readState(tx),
  }));
  const history = all.filter((h) => h.outcome === 'succeeded' || h.outcome === 'continued');
  const steps = new Map<string, { stepId: string; phase: string; durationMs: number; rowsAffected: number | null }>();
  for (const entry of history) {
    const step = steps.get(entry.stepId) ?? { stepId: entry.stepId, phase: entry.phase, durationMs: 0, rowsAffected: null };
    step.durationMs += entry.durationMs ?? 0;
    if (entry.rowsAffected !== undefined) step.rowsAffected = (step.rowsAffected ?? 0) + entry.rowsAffected;
    steps.set(entry.stepId, step);
  }
  const stepsRun = [...steps.values()];
  return {
    runId: plan.runId,
    target: plan.target,
    outcome: plan.stopAfter ? `stopped after ${plan.stopAfter}` : 'completed',
    versionBefore: plan.versionBefore,
    versionAfter: formatVersion(state.version),
    steps: stepsRun,
    rowsMigrated: stepsRun.filter((s) => s.phase === 'migrate').reduce((sum, s) => sum + (s.rowsAffected ?? 0), 0),
    durationMs: Date.now() - new Date(plan.startedAt).getTime(),
  };
}
