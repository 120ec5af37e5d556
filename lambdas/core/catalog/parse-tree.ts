/**
 * Calls `visit` with every property of every object in a libpg-query parse tree, depth first. Node types appear as
 * property names (`{ DeleteStmt: {...} }`), so a visitor finds a kind of node anywhere, e.g. in a WITH query.
 */
export function visitTree(tree: unknown, visit: (key: string, value: unknown) => void): void {
  if (Array.isArray(tree)) {
    for (const item of tree) visitTree(item, visit);
  } else if (tree !== null && typeof tree === 'object') {
    for (const [key, value] of Object.entries(tree)) {
      visit(key, value);
      visitTree(value, visit);
    }
  }
}

/** Data-modifying statements, as parse tree node types. */
export const DATA_MODIFYING = new Set(['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt']);

/**
 * Built-in functions that write or change state even when called from a SELECT. Not exhaustive (no list of
 * functions can be): the engine also runs pending queries in a READ ONLY transaction, which catches the rest.
 */
const WRITING_FUNCTIONS = new Set([
  'nextval',
  'setval',
  'set_config',
  'pg_notify',
  'pg_advisory_lock',
  'pg_advisory_xact_lock',
  'pg_advisory_lock_shared',
  'pg_advisory_xact_lock_shared',
  'pg_terminate_backend',
  'pg_cancel_backend',
  'pg_reload_conf',
  'lo_import',
  'lo_export',
  'lo_unlink',
  'lo_create',
  'dblink_exec',
]);

/** Why a parsed SELECT is not read-only, from its syntax alone; empty when nothing shows that it writes. */
export function writesOfSelect(node: Record<string, unknown>): string[] {
  const reasons = new Set<string>();
  visitTree({ SelectStmt: node }, (key, value) => {
    if (DATA_MODIFYING.has(key)) reasons.add(`it holds a data-modifying ${key.replace('Stmt', '').toUpperCase()}`);
    if (key === 'lockingClause' && Array.isArray(value) && value.length > 0) reasons.add('it locks rows (FOR UPDATE / FOR SHARE)');
    if (key === 'intoClause') reasons.add('SELECT INTO creates a table');
    if (key === 'FuncCall') {
      const name = (value as { funcname?: { String?: { sval?: string } }[] }).funcname?.at(-1)?.String?.sval;
      if (name && WRITING_FUNCTIONS.has(name.toLowerCase())) reasons.add(`it calls ${name}(), which writes or changes state`);
    }
  });
  return [...reasons];
}
