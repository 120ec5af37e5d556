import * as z from 'zod/mini';
import '../validation.ts';
import { sessionPatternProblem } from '../drain/session-drain.ts';
import { InputError } from '../errors.ts';
import { settingsOverridesSchema } from '../settings.ts';

/**
 * What an operator may put in an execution's input. `{}` upgrades to the newest release the function ships.
 * Unknown fields are refused, so a typo never silently means "use the default".
 */
export const executionInputSchema = z.strictObject({
  /** The release to upgrade to; every pending step up to and including it runs. @default the newest release */
  targetRelease: z.optional(z.string().check(z.minLength(1))),
  /** End the execution successfully after this phase; a later execution continues. @default run to the end */
  stopAfter: z.optional(z.enum(['expand', 'migrate'])),
  /** Overrides of the batch settings for this execution. */
  settings: z.optional(settingsOverridesSchema),
  /** The drain gate's view of the new release, per ECS service name: task definition ARN or family:revision. */
  newTaskDefinitions: z.optional(z.record(z.string().check(z.minLength(1)), z.string().check(z.minLength(1)))),
  /** The drain gate for this release: `sessions` replaces the session drain source's pattern (e.g. `myapp-v41%`). */
  drain: z.optional(
    z.strictObject({
      sessions: z.optional(
        z.string().check(
          z.refine((pattern) => sessionPatternProblem(pattern) === undefined, {
            message: "must be a LIKE pattern matching only the old release's application_name (e.g. \"myapp-v41%\"), not empty and not only %",
          }),
        ),
      ),
    }),
  ),
  /**
   * Set by the state machine itself, never by an operator: the execution this one continues (a long migration
   * goes on in a new execution before the history limit). This execution takes the lease over from it.
   */
  continueFrom: z.optional(z.string().check(z.regex(/^arn:[^:]+:states:[^:]+:\d{12}:execution:[^:]+:[^:]+$/))),
  /** Set by the state machine with `continueFrom`: the old release's task definitions the first execution recorded. */
  oldTaskDefinitions: z.optional(z.record(z.string(), z.array(z.string()))),
  /**
   * Migrate steps whose file changed after some of their batches committed, to run again from their first key with the
   * new file: the operator's recorded decision (history outcome `restarted`). @default none
   */
  restartSteps: z.optional(z.array(z.string().check(z.minLength(1)))),
});

export type ExecutionInput = z.infer<typeof executionInputSchema>;

/** Parses the execution input; every problem is reported at once, each naming its field. */
export function parseExecutionInput(raw: unknown): ExecutionInput {
  const parsed = executionInputSchema.safeParse(raw ?? {});
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => {
    const field = issue.path.length ? issue.path.join('.') : '(input)';
    if (issue.code === 'unrecognized_keys') {
      const prefix = issue.path.length ? `${issue.path.join('.')}.` : '';
      return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${prefix}${k}"`).join(', ')}`;
    }
    return `"${field}": ${issue.message}`;
  });
  throw new InputError(
    `Invalid execution input: ${problems.join('; ')}. Accepted fields: targetRelease, stopAfter ("expand" or "migrate"), settings {${Object.keys(settingsOverridesSchema.shape).join(', ')}}, newTaskDefinitions, drain {sessions}, restartSteps (continueFrom and oldTaskDefinitions are set only by the state machine).`,
  );
}
