/**
 * The longest SQL text one RDS Data API call takes. ExecuteStatement, request parameter `sql`: "Length Constraints:
 * Maximum length of 65536." (https://docs.aws.amazon.com/rdsdataservice/latest/APIReference/API_ExecuteStatement.html)
 */
export const DATA_API_MAX_SQL_LENGTH = 65_536;

/** A statement of a step file as the engine sends it, with the line it starts on and what it is, for messages. */
export interface SentStatement {
  readonly sql: string;
  readonly line: number;
  readonly what: string;
}

/**
 * The statements longer than one Data API call takes, each as a problem naming its line. The engine sends every
 * statement of a step, the migrate batch and the `emc:pending` query as their text exactly, without wrapping them
 * (phases/apply-schema-step.ts, phases/migrate.ts), so the text itself is what is measured. Length is counted in
 * UTF-16 code units, never fewer than Unicode characters: no statement over the limit gets through.
 */
export function oversizedStatements(statements: readonly SentStatement[]): { line: number; message: string }[] {
  return statements
    .filter((s) => s.sql.length > DATA_API_MAX_SQL_LENGTH)
    .map((s) => ({
      line: s.line,
      message:
        `${s.what} is ${s.sql.length} characters long; one RDS Data API call takes at most ${DATA_API_MAX_SQL_LENGTH}. ` +
        'Split it into several statements (or several steps)',
    }));
}
