/**
 * Reads the Cause the "Upgrade failed" state carries (lambdas/core/workflow/failure-report.ts):
 *
 *   "<failed state>" failed with <Error>: <message>
 *   Next: <next safe action>
 *   Database version now: <composite version>
 *
 * where a failed SQL step's message reads `Step <id> failed (SQLSTATE <code>): <error> (<file>, statement at line N)`.
 * Every part is optional: a cause in another shape (a timeout, an abort) still yields what it holds.
 */
export interface ParsedCause {
  readonly failedState: string | null;
  readonly error: string | null;
  /** The error message alone, without the Next and version lines. */
  readonly message: string;
  readonly stepId: string | null;
  readonly file: string | null;
  readonly line: number | null;
  readonly sqlState: string | null;
  readonly nextAction: string | null;
  readonly version: string | null;
}

const HEAD = /^"([^"\n]+)" failed with ([A-Za-z0-9_.:-]+): /;
const VERSION_LINE = /\nDatabase version now: ([^\n]*)\s*$/;
const NEXT_LINE = /\nNext: ([\s\S]*)$/;
const STEP_ID = /\bStep ([A-Za-z0-9][A-Za-z0-9.-]*_(?:expand|migrate|contract)\d{2,})\b/;
const STATEMENT_AT = /\(([^()\n]+\.sql), statement at line (\d+)\)/;
const SQLSTATE = /\(SQLSTATE ([0-9A-Z]{5})\)/;

export function parseFailureCause(cause: string): ParsedCause {
  let rest = cause;
  const head = HEAD.exec(rest);
  if (head) rest = rest.slice(head[0].length);
  const version = VERSION_LINE.exec(rest);
  if (version) rest = rest.slice(0, version.index);
  const next = NEXT_LINE.exec(rest);
  if (next) rest = rest.slice(0, next.index);
  const statement = STATEMENT_AT.exec(rest);
  return {
    failedState: head?.[1] ?? null,
    error: head?.[2] ?? null,
    message: rest.trim(),
    stepId: STEP_ID.exec(rest)?.[1] ?? null,
    file: statement?.[1] ?? null,
    line: statement ? Number(statement[2]) : null,
    sqlState: SQLSTATE.exec(rest)?.[1] ?? null,
    nextAction: next?.[1]?.trim() ?? null,
    version: version?.[1]?.trim() ?? null,
  };
}
