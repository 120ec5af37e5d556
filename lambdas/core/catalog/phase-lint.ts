import { visitTree } from './parse-tree.ts';
import type { ParsedStatement } from './sql-statements.ts';
import type { Phase } from './step.ts';

/**
 * What each phase must not do, checked on PostgreSQL's parse tree. Expand runs while the old release serves
 * traffic, so it must not remove or rename anything that release reads. Contract runs after the old release is
 * gone and only removes, so it must not add tables or columns (they belong in expand, before the new code runs).
 * Migrate moves data only (checked where its batch statement is read, with no override).
 *
 * Returns one finding per offending statement; a file may override them with `-- emc:allow-destructive <reason>`.
 */
export function lintPhase(phase: Phase, statement: ParsedStatement): string[] {
  switch (phase) {
    case 'expand':
      return expandFindings(statement);
    case 'contract':
      return contractFindings(statement);
    case 'migrate':
      // A migrate step's one statement must modify data; that is a refusal of its own, not a lint finding.
      return [];
  }
}

function expandFindings({ type, node }: ParsedStatement): string[] {
  const findings: string[] = [];
  if (type === 'DropStmt' && DROPPED_RELATIONS.has(String(node.removeType))) {
    findings.push(`expand must not drop a ${kindOf(String(node.removeType))} (the old release may still use it)`);
  }
  if (type === 'DropStmt' && node.behavior === 'DROP_CASCADE') {
    findings.push(
      `expand must not DROP ${kindOf(String(node.removeType)).toUpperCase()} ... CASCADE (it also drops whatever depends on it, e.g. a column of a dropped type, with its data)`,
    );
  }
  if (type === 'TruncateStmt') findings.push('expand must not truncate a table (the old release may still use its rows)');
  // A function's body runs when it is called, not when expand creates it.
  let deletes = false;
  if (type !== 'CreateFunctionStmt') visitTree(node, (key) => (deletes ||= key === 'DeleteStmt'));
  if (type === 'DeleteStmt' || deletes) findings.push('expand must not delete rows (the old release may still use them)');
  if (type === 'RenameStmt' && RENAMED_RELATIONS.has(String(node.renameType))) {
    findings.push(`expand must not rename a ${kindOf(String(node.renameType))} (the old release still uses the old name)`);
  }
  if (type === 'AlterTableStmt') {
    for (const cmd of alterCommands(node)) {
      if (cmd.subtype === 'AT_DropColumn') {
        findings.push(`expand must not drop column "${String(cmd.name)}" (the old release may still read it)`);
      } else if (cmd.behavior === 'DROP_CASCADE') {
        findings.push('expand must not use CASCADE in ALTER TABLE (it also drops whatever depends on the dropped object)');
      }
      if (cmd.subtype === 'AT_AlterColumnType') {
        findings.push(
          `expand must not change the type of column "${String(cmd.name)}" (the old release reads and writes it as it is, and the conversion may rewrite or lose values)`,
        );
      }
    }
  }
  const hidden = HIDDEN_STATEMENTS[type];
  if (hidden) findings.push(`expand cannot check what ${hidden} runs: it may drop, delete or rewrite what the old release uses`);
  return findings;
}

/** Statements whose effect the parse tree does not show: a finding in expand unless overridden with a reason. */
const HIDDEN_STATEMENTS: Record<string, string> = {
  DoStmt: 'a DO block',
  ExecuteStmt: 'EXECUTE of a prepared statement',
  CallStmt: 'CALL of a procedure',
};

function contractFindings({ type, node }: ParsedStatement): string[] {
  if (type === 'CreateStmt') return ['contract must not create a table (add it in expand, before the new release runs)'];
  if (type === 'CreateTableAsStmt') {
    return ['contract must not create a table (add it in expand, before the new release runs)'];
  }
  if (type === 'AlterTableStmt') {
    return alterCommands(node)
      .filter((cmd) => cmd.subtype === 'AT_AddColumn')
      .map((cmd) => {
        const def = (cmd.def as { ColumnDef?: { colname?: string } } | undefined)?.ColumnDef;
        return `contract must not add column "${def?.colname ?? '?'}" (add it in expand, before the new release runs)`;
      });
  }
  return [];
}

const DROPPED_RELATIONS = new Set(['OBJECT_TABLE', 'OBJECT_VIEW', 'OBJECT_MATVIEW', 'OBJECT_SCHEMA']);
const RENAMED_RELATIONS = new Set(['OBJECT_TABLE', 'OBJECT_COLUMN', 'OBJECT_VIEW', 'OBJECT_SCHEMA']);

function kindOf(objectType: string): string {
  return objectType.replace(/^OBJECT_/, '').toLowerCase().replace('matview', 'materialized view');
}

/** The commands of an ALTER TABLE statement's parse tree (`AlterTableCmd` bodies). */
export function alterCommands(node: Record<string, unknown>): Record<string, unknown>[] {
  const cmds = (node.cmds as { AlterTableCmd?: Record<string, unknown> }[] | undefined) ?? [];
  return cmds.flatMap((c) => (c.AlterTableCmd ? [c.AlterTableCmd] : []));
}

/** Statements PostgreSQL refuses to run inside a transaction block. */
export function needsNoTransaction({ type, node }: ParsedStatement): boolean {
  if (type === 'IndexStmt' || type === 'DropStmt' || type === 'ReindexStmt') {
    if (node.concurrent === true) return true;
    const params = (node.params as { DefElem?: { defname?: string } }[] | undefined) ?? [];
    return params.some((p) => p.DefElem?.defname === 'concurrently');
  }
  return type === 'VacuumStmt' || type === 'CreatedbStmt' || type === 'DropdbStmt';
}

/** Settings the engine itself sets on every step and batch, from the run's settings. */
const ENGINE_SETTINGS: Record<string, string> = {
  lock_timeout: 'the lockTimeoutMs setting',
  statement_timeout: 'the batchStatementTimeoutMs setting for batches',
  idle_in_transaction_session_timeout: 'its own value',
  transaction_timeout: 'its own value',
};

/**
 * Why `statement` may not appear in any step, or undefined. Transaction control would break a step's atomicity
 * (the engine runs each step, and records it applied, in one transaction of its own), and session settings would
 * outlive the step on the engine's connection, or be lost between Data API calls; `SET LOCAL` would override the
 * engine's own timeouts for the rest of the step. These are refusals, not lint findings: no directive overrides them.
 */
export function forbiddenInAnyStep({ type, node }: ParsedStatement): string | undefined {
  if (type === 'TransactionStmt') {
    const word = String(node.kind).replace(/^TRANS_STMT_/, '').replace('_', ' ');
    return (
      `${word} is not allowed in a step: emc runs each step in one transaction of its own and records it applied in ` +
      'that same transaction (a "-- emc:no-transaction" step runs each statement on its own); to commit part of the ' +
      'work first, split it into two steps'
    );
  }
  if (type === 'VariableSetStmt') {
    const name = node.name === undefined ? 'ALL' : String(node.name);
    const reset = String(node.kind).startsWith('VAR_RESET');
    const what = `${reset ? 'RESET' : node.is_local === true ? 'SET LOCAL' : 'SET'} ${name}`;
    const engine = ENGINE_SETTINGS[name.toLowerCase()];
    if (engine) return `${what} is not allowed in a step: emc sets ${name} itself (${engine}); change the setting instead`;
    if (name.toLowerCase() === 'search_path') {
      return `${what} is not allowed in a step: it would outlive the step, or be lost between Data API calls; use schema-qualified names (schema.table)`;
    }
    return (
      `${what} is not allowed in a step: a session setting would outlive the step on emc's connection, or be lost ` +
      'between Data API calls, and SET LOCAL would change the transaction emc runs its own statements in; set it on ' +
      'the role or database (ALTER ROLE ... SET) or write the statements so that they do not need it'
    );
  }
  if (type === 'DiscardStmt') {
    return `${String(node.target).replace('DISCARD_', 'DISCARD ')} is not allowed in a step: it resets the session emc runs the step in`;
  }
  return undefined;
}
