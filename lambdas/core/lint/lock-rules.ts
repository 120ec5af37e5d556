import type { Phase } from '../catalog/step.ts';

/**
 * Every rule of squawk 2.61 (the squawk-cli version package.json pins), decided per phase. A rule with a reason for a phase is kept there: its finding refuses
 * the file unless the file says `-- emc:allow-lock <rule> <reason>`. A rule with no reason for a phase is not
 * reported there, for the reason in `off`: emc already refuses or handles what it checks, the phase is where that
 * change belongs, or the rule is about style rather than locks and compatibility.
 *
 * What the engine does that shapes the table: each transactional step runs in one transaction under `lock_timeout`
 * (so squawk is told to assume a transaction); a `-- emc:no-transaction` step runs statement by statement and
 * rebuilds a named `CREATE INDEX CONCURRENTLY` left invalid by a crash; a migrate step's statement runs batch by
 * batch under `batchStatementTimeoutMs`. docs/operators.md shows this table ("Lock-safety lint").
 */
export const LOCK_RULES: Record<string, LockRule> = {
  'adding-field-with-default': both('a volatile default (random(), gen_random_uuid(), clock_timestamp()) rewrites the whole table under an ACCESS EXCLUSIVE lock: add the column without it, set the default after, and backfill in migrate'),
  'adding-foreign-key-constraint': both('validating a new foreign key scans the table and blocks writes to both tables: add it NOT VALID, then VALIDATE CONSTRAINT in a later step (a transaction of its own)'),
  'adding-not-nullable-field': both('SET NOT NULL scans the whole table under an ACCESS EXCLUSIVE lock: add a CHECK (col IS NOT NULL) NOT VALID, VALIDATE it, then SET NOT NULL uses it'),
  'adding-serial-primary-key-field': both('adding a serial primary key rewrites the table and builds its index under an ACCESS EXCLUSIVE lock'),
  'adding-required-field': {
    expand: 'a NOT NULL column without a default makes every INSERT of the old release fail, which does not know the column',
    contract: 'a NOT NULL column without a default makes every INSERT of the running release fail, which does not write it',
  },
  'ban-alter-domain-with-add-constraint': both('a constraint added to a domain is checked on every column of that domain, scanning each table under lock'),
  'ban-char-field': off('style (char(n) pads values), not locks or compatibility'),
  'ban-concurrent-index-creation-in-transaction': off('emc refuses it already: a statement PostgreSQL cannot run in a transaction needs "-- emc:no-transaction"'),
  'ban-create-domain-with-constraint': both('a domain with a constraint makes every later change of that constraint scan all its columns under lock'),
  'ban-drop-column': off('contract is where columns are dropped; in expand emc refuses it already (emc:allow-destructive)'),
  'ban-drop-database': all('a step must never drop a database'),
  'ban-drop-not-null': {
    expand: 'the old release still reads the column and may not expect NULL in it once the new release writes NULLs',
    off: 'in contract the old release is gone, and the running release was written for NULLs',
  },
  'ban-drop-table': off('contract is where tables are dropped; in expand emc refuses it already (emc:allow-destructive)'),
  'ban-truncate-cascade': both('TRUNCATE ... CASCADE also empties every table with a foreign key to this one'),
  'ban-uncommitted-transaction': off('emc refuses transaction control in a step already'),
  'changing-column-type': {
    expand: 'changing a type takes an ACCESS EXCLUSIVE lock and usually rewrites the table, blocking reads and writes meanwhile; add a new column, backfill it in migrate, drop the old one in contract',
    contract: 'changing a type takes an ACCESS EXCLUSIVE lock and usually rewrites the table, blocking the running release meanwhile; move the data to a new column instead',
  },
  'constraint-missing-not-valid': both('a constraint added without NOT VALID, or validated in the transaction that added it, scans the whole table under the lock ADD CONSTRAINT took, blocking writes: add it NOT VALID in one step and VALIDATE CONSTRAINT (a weaker lock) in a later step, which runs in a transaction of its own'),
  'disallowed-unique-constraint': both('ADD UNIQUE builds its index while it blocks writes: CREATE UNIQUE INDEX CONCURRENTLY in a no-transaction step, then ADD CONSTRAINT ... UNIQUE USING INDEX'),
  'identifier-too-long': all('PostgreSQL silently truncates names longer than 63 bytes, so a re-run or a later step looking the object up by its full name does not find it'),
  'prefer-bigint-over-int': off('style (the size of a key), not locks or compatibility'),
  'prefer-bigint-over-smallint': off('style (the size of a key), not locks or compatibility'),
  'prefer-identity': off('style (serial or identity), not locks or compatibility'),
  'prefer-repack': both('VACUUM FULL and CLUSTER rewrite the table under an ACCESS EXCLUSIVE lock, blocking reads and writes until they end'),
  'prefer-robust-stmts': all('a "-- emc:no-transaction" step is re-run from its first statement after a crash, so each statement must be safe to repeat (IF [NOT] EXISTS); emc itself makes a named CREATE INDEX CONCURRENTLY safe to repeat'),
  'prefer-text-field': off('style (varchar(n) or text), not locks or compatibility'),
  'prefer-timestamp-tz': off('style (timestamp or timestamptz), not locks or compatibility'),
  'renaming-column': {
    expand: 'the old release still uses the old name: add a column, keep both in step with a trigger, backfill in migrate, drop the old one in contract',
    contract: 'the running release already uses the current name: a rename breaks it',
  },
  'renaming-table': {
    expand: 'the old release still uses the old name: create the new table (or a view) beside it instead',
    contract: 'the running release already uses the current name: a rename breaks it',
  },
  'require-concurrent-index-creation': both('CREATE INDEX without CONCURRENTLY blocks writes to the table while it builds: use CREATE INDEX CONCURRENTLY <name> in a "-- emc:no-transaction" step'),
  'require-concurrent-index-deletion': both('DROP INDEX without CONCURRENTLY takes an ACCESS EXCLUSIVE lock on the table: use DROP INDEX CONCURRENTLY in a "-- emc:no-transaction" step'),
  'require-concurrent-partition-detach': both('DETACH PARTITION without CONCURRENTLY takes an ACCESS EXCLUSIVE lock on the parent table'),
  'require-concurrent-reindex': both('REINDEX without CONCURRENTLY blocks writes to the table (and reads that use the index) until it ends'),
  'require-enum-value-ordering': off('the order of enum values, not locks or compatibility'),
  'require-lock-timeout': off('emc sets lock_timeout itself (the lockTimeoutMs setting) and refuses SET in a step'),
  'require-statement-timeout': off('emc bounds lock waits itself and batches with batchStatementTimeoutMs, and refuses SET in a step; a DDL step may rightly run long'),
  'require-table-schema': off('opt-in in squawk; emc resolves names with the database\'s search_path'),
  'require-timeout-settings': off('an alias of require-lock-timeout and require-statement-timeout'),
  'syntax-error': all('squawk could not parse this statement (PostgreSQL can), so none of its lock-safety rules checked it; check it by hand'),
  'transaction-nesting': off('emc refuses transaction control in a step already'),
  'unused-ignore': off('emc removes comments before squawk reads a file: only emc:allow-lock overrides a finding'),
};

/**
 * emc's own rules, for what squawk does not see: a problem of how the engine runs a step rather than of one
 * statement. Reported, allowed and listed in docs/operators.md like squawk's.
 */
export const EMC_LOCK_RULES: Record<string, LockRule> = {
  'validate-constraint-after-other-statements': both(
    "VALIDATE CONSTRAINT scans the whole table inside the step's transaction, under every lock the statements before it took (a DROP TRIGGER, DROP COLUMN, SET NOT NULL or ALTER of another table takes ACCESS EXCLUSIVE, blocking that table's reads and writes until the scan ends): validate first in the step, or in a step of its own",
  ),
};

/** Why a rule matters in each phase where it is kept; `off` says why it is not reported anywhere else. */
export interface LockRule {
  readonly expand?: string;
  readonly migrate?: string;
  readonly contract?: string;
  readonly off?: string;
}

function both(why: string): LockRule {
  return { expand: why, contract: why };
}

function all(why: string): LockRule {
  return { expand: why, migrate: why, contract: why };
}

function off(why: string): LockRule {
  return { off: why };
}

/**
 * Why `rule` matters in `phase`, or undefined when emc does not report it there. A rule missing from the table (a
 * squawk other than the pinned one, `emc lint --squawk`) is reported in every phase rather than silently dropped.
 */
export function whyInPhase(rule: string, phase: Phase): string | undefined {
  const known = knownLockRule(rule);
  return known ? known[phase] : UNDECIDED_RULE;
}

/** A rule of squawk's or of emc's own that emc has decided, or undefined. */
export function knownLockRule(rule: string): LockRule | undefined {
  if (Object.hasOwn(LOCK_RULES, rule)) return LOCK_RULES[rule];
  return Object.hasOwn(EMC_LOCK_RULES, rule) ? EMC_LOCK_RULES[rule] : undefined;
}

const UNDECIDED_RULE =
  'emc has not decided this squawk rule (it knows the rules of the squawk-cli version it pins), so it is reported in every phase';
