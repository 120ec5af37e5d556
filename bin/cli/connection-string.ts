import { parse } from 'pg-connection-string';
import { UsageError } from './cli-errors.ts';

/** What is shown instead of a connection string that cannot be parsed: it might hold a password anywhere. */
export const HIDDEN_CONNECTION_STRING = '(connection string hidden)';

/**
 * The forms node-postgres reads (through pg-connection-string): a URL, or `socket:/dir?db=...`. A libpq
 * keyword/value string (`host=... password=...`) is not one of them: node-postgres would take the whole text as the
 * database name.
 */
const READABLE_FORM = /^(?:postgres(?:ql)?:\/\/|socket:)/i;

/** Parses a connection string as node-postgres will; undefined when it cannot (never the text itself in an error). */
function parseConnectionString(connectionString: string): ReturnType<typeof parse> | undefined {
  if (!READABLE_FORM.test(connectionString)) return undefined;
  try {
    return parse(connectionString);
  } catch {
    return undefined;
  }
}

/**
 * A connection string as it may be printed: rebuilt from its parsed user, host, port and database, with `***` for a
 * password wherever it was given (`user:pw@`, `?password=`); query parameters are left out. Anything that does not
 * parse is shown as `(connection string hidden)`.
 */
export function describeConnectionString(connectionString: string): string {
  const parsed = parseConnectionString(connectionString);
  if (!parsed) return HIDDEN_CONNECTION_STRING;
  const user = parsed.user ? `${parsed.user}${parsed.password ? ':***' : ''}@` : parsed.password ? ':***@' : '';
  const port = parsed.port ? `:${parsed.port}` : '';
  return `postgres://${user}${parsed.host ?? ''}${port}/${parsed.database ?? ''}`;
}

/** Refuses a `--database-url` node-postgres cannot read, naming the option but never echoing the value. */
export function checkDatabaseUrl(connectionString: string, option: string): void {
  if (parseConnectionString(connectionString)) return;
  throw new UsageError(
    `${option} is not a PostgreSQL URL node-postgres can read (the value is not shown: it may hold a password).`,
    `Give a URL such as postgres://user:password@host:5432/database (percent-encode special characters); keyword/value strings (host=... password=...) are not supported.`,
  );
}
