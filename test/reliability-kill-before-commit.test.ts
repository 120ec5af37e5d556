import { beforeAll, describe, expect, it } from 'vitest';
import { FaultInjectingSqlClient } from './support/fault-client.ts';
import { describeKillOutcomes, killAtEveryBoundary, prepareReference, type Reference } from './support/kill-points.ts';
import { recordFigures } from './support/reliability-figures.ts';

/**
 * Crash at every statement boundary, part 2 of 2 (part 1: reliability-kill-before-statement): the statement runs,
 * then its connection dies before anything else is sent on it. Part 1 already kills "before" every statement, which
 * is also "after" the previous statement of the same transaction; what remains, and is tried here, is every boundary
 * part 1 cannot reach:
 * - after the LAST statement of each transaction, before its COMMIT: the crash between a batch's writes (and its
 *   cursor update) and the commit, between a step's DDL (and its version row) and the commit;
 * - after every autocommit statement: it committed, but the reply never arrived (e.g. CREATE INDEX CONCURRENTLY
 *   succeeded and the runner was not told).
 * Recovery as a retried Lambda of the same execution does it: the same run id, whose lease is still live, takes it
 * again (a renewal), and the workflow runs again from its first task.
 */
let reference: Reference;
beforeAll(async () => {
  reference = await prepareReference();
});

describe('a full upgrade of the demo release killed after a statement, before its commit or its reply', () => {
  it('converges after every such kill point to the uninterrupted result: version, schema, every row, each row changed once', { timeout: 300_000 }, async () => {
    const points = FaultInjectingSqlClient.boundaries(reference.statements, 'after');
    const autocommit = points.filter((s) => !s.inTransaction).length;
    const transactions = new Set(reference.statements.flatMap((s) => (s.transaction === undefined ? [] : [s.transaction])));
    expect(points).toHaveLength(autocommit + transactions.size);
    // A migrate step's start and end and migrate's reads are autocommitted statements, killed after they ran.
    expect(transactions.size).toBeGreaterThan(15);
    expect(autocommit).toBeGreaterThan(15);

    const outcomes = await killAtEveryBoundary(reference, 'after');

    const { figure, failures } = describeKillOutcomes(
      reference,
      outcomes,
      `Statement runs, then its connection dies: before the COMMIT of each of the ${transactions.size} transactions and before the reply of each of the ${autocommit} autocommit statements; recovery: the same execution retried (same run id and lease)`,
    );
    await recordFigures('faults 2: kill after a statement, before its commit or reply', 'test/reliability-kill-before-commit.test.ts', [figure]);
    expect(failures).toEqual([]);
    expect(outcomes.map((o) => o.at)).toEqual(points.map((s) => s.n));
  });
});
