import { scanSync } from 'libpg-query';
import { lineAndColumn, type ParsedStatement } from './sql-statements.ts';
import type { Phase } from './step.ts';

/**
 * Directives are full-line comments `-- emc:<name> <argument>` in a migration file, outside its statements. They
 * are comments, so the file stays plain SQL that psql can run. The table below is the whole language; anything
 * else is an error, and so is a directive-like line where emc does not read directives (inside a statement, a
 * string, a dollar-quoted body or a block comment, or after SQL on the same line): it would look obeyed and not be.
 */
export const DIRECTIVES = {
  'no-transaction': { phases: ['expand', 'contract'], argument: 'none' },
  'allow-destructive': { phases: ['expand', 'contract'], argument: 'text' },
  // `<rule> <reason>`, once a rule: read by the lock-safety lint (lambdas/core/lint/lock-lint.ts).
  'allow-lock': { phases: ['expand', 'migrate', 'contract'], argument: 'text', repeatable: true },
  keyset: { phases: ['migrate'], argument: 'text' },
  'repeat-until-zero': { phases: ['migrate'], argument: 'none' },
  'batch-size': { phases: ['migrate'], argument: 'text' },
  pending: { phases: ['migrate'], argument: 'text' },
  'no-pending': { phases: ['migrate'], argument: 'text' },
} as const satisfies Record<string, { phases: readonly Phase[]; argument: 'none' | 'text'; repeatable?: true }>;

export type DirectiveName = keyof typeof DIRECTIVES;

export interface Directive {
  readonly name: DirectiveName;
  readonly argument: string;
  readonly line: number;
}

export interface DirectiveProblem {
  readonly message: string;
  readonly line: number;
}

const DIRECTIVE_LINE = /^(\s*)--\s*emc:(\S*)\s*(.*?)\s*$/;
const DIRECTIVE_COMMENT = /^--\s*emc:(\S*)/;

/**
 * Reads the directives of a file whose `statements` parsed. Uses PostgreSQL's scanner: only a `--` comment token
 * that starts its line and lies between statements is a directive.
 */
export function readDirectives(
  text: string,
  phase: Phase,
  statements: readonly Pick<ParsedStatement, 'start' | 'end' | 'line'>[],
): { directives: Directive[]; problems: DirectiveProblem[] } {
  const directives: Directive[] = [];
  const problems: DirectiveProblem[] = [];
  const comments = new Map(
    text.length === 0 ? [] : scanSync(text).tokens.filter((t) => t.tokenName === 'SQL_COMMENT').map((t) => [t.start, t]),
  );
  const bytes = Buffer.from(text, 'utf8');
  const ownLine = new Set<number>();
  let lineStart = 0;
  text.split('\n').forEach((content, index) => {
    const offset = lineStart;
    lineStart += Buffer.byteLength(content) + 1;
    const match = DIRECTIVE_LINE.exec(content);
    if (!match) return;
    const line = index + 1;
    const [, indent = '', name = '', argument = ''] = match;
    const start = offset + Buffer.byteLength(indent);
    ownLine.add(start);
    if (!comments.has(start)) {
      problems.push({
        line,
        message: `"-- emc:${name}" is inside a string, a dollar-quoted body or a block comment, where emc does not read directives; move it above the statement, or reword it if it is not meant as one`,
      });
      return;
    }
    const around = statements.find((s) => s.start < start && start < s.end);
    if (around) {
      problems.push({
        line,
        message: `"-- emc:${name}" is inside the statement starting on line ${around.line}, where emc does not read directives; move it above the statement, or reword it if it is not meant as one`,
      });
      return;
    }
    if (!Object.hasOwn(DIRECTIVES, name)) {
      problems.push({ line, message: `unknown directive "emc:${name}" (known: ${Object.keys(DIRECTIVES).map((d) => `emc:${d}`).join(', ')})` });
      return;
    }
    const spec = DIRECTIVES[name as DirectiveName];
    if (!(spec.phases as readonly Phase[]).includes(phase)) {
      problems.push({ line, message: `directive "emc:${name}" is not allowed in ${phase === 'expand' ? 'an' : 'a'} ${phase} step (only in ${spec.phases.join(', ')})` });
      return;
    }
    if (spec.argument === 'none' && argument) {
      problems.push({ line, message: `directive "emc:${name}" takes no argument, found "${argument}"` });
      return;
    }
    if (spec.argument === 'text' && !argument) {
      problems.push({ line, message: `directive "emc:${name}" needs an argument` });
      return;
    }
    if (!('repeatable' in spec) && directives.some((d) => d.name === name)) {
      problems.push({ line, message: `directive "emc:${name}" appears more than once` });
      return;
    }
    directives.push({ name: name as DirectiveName, argument, line });
  });
  for (const [start, comment] of comments) {
    const match = DIRECTIVE_COMMENT.exec(comment.text);
    if (match && !ownLine.has(start)) {
      problems.push({
        line: lineAndColumn(bytes, start).line,
        message: `"-- emc:${match[1]}" follows SQL on the same line, where emc does not read directives; put a directive on a line of its own`,
      });
    }
  }
  return { directives, problems };
}
