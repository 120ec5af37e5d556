/**
 * The tables a statement names (schema-qualified where it qualifies them), quoted for SQL, from PostgreSQL's parse
 * tree. Read at load, so that the Lambda functions, which have no SQL parser, get them from the compiled catalog.
 */
export function tablesNamedBy(node: unknown): string[] {
  const found = new Set<string>();
  const walk = (value: unknown): void => {
    if (Array.isArray(value)) return value.forEach(walk);
    if (value === null || typeof value !== 'object') return;
    for (const [key, child] of Object.entries(value)) {
      if (key === 'RangeVar' && child && typeof child === 'object') {
        const { schemaname, relname } = child as { schemaname?: string; relname?: string };
        if (relname) found.add(schemaname ? `${quoteIdentifier(schemaname)}.${quoteIdentifier(relname)}` : quoteIdentifier(relname));
      }
      walk(child);
    }
  };
  walk(node);
  return [...found];
}

function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
