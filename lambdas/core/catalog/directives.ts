import type { Phase } from './step.ts';

/**
 * Directives are full-line comments `-- emc:<name> <argument>` in a migration file. They are comments, so the file
 * stays plain SQL that psql can run. The table below is the whole language; anything else is an error.
 */
export const DIRECTIVES = {
  'no-transaction': { phases: ['expand', 'contract'], argument: 'none' },
  'allow-destructive': { phases: ['expand', 'contract', 'migrate'], argument: 'text' },
  keyset: { phases: ['migrate'], argument: 'text' },
  'repeat-until-zero': { phases: ['migrate'], argument: 'none' },
  'batch-size': { phases: ['migrate'], argument: 'text' },
  pending: { phases: ['migrate'], argument: 'text' },
} as const satisfies Record<string, { phases: readonly Phase[]; argument: 'none' | 'text' }>;

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

const DIRECTIVE_LINE = /^\s*--\s*emc:(\S*)\s*(.*?)\s*$/;

export function readDirectives(text: string, phase: Phase): { directives: Directive[]; problems: DirectiveProblem[] } {
  const directives: Directive[] = [];
  const problems: DirectiveProblem[] = [];
  text.split('\n').forEach((content, index) => {
    const match = DIRECTIVE_LINE.exec(content);
    if (!match) return;
    const line = index + 1;
    const [, name = '', argument = ''] = match;
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
    if (directives.some((d) => d.name === name)) {
      problems.push({ line, message: `directive "emc:${name}" appears more than once` });
      return;
    }
    directives.push({ name: name as DirectiveName, argument, line });
  });
  return { directives, problems };
}
