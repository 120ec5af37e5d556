import { z } from 'zod';
import { InputError } from '../errors.ts';
import { settingsOverridesSchema } from '../settings.ts';

/**
 * What an operator may put in an execution's input. `{}` upgrades to the newest release the function ships.
 * Unknown fields are refused, so a typo never silently means "use the default".
 */
export const executionInputSchema = z.strictObject({
  /** The release to upgrade to; every pending step up to and including it runs. @default the newest release */
  targetRelease: z.string().min(1).optional(),
  /** End the execution successfully after this phase; a later execution continues. @default run to the end */
  stopAfter: z.enum(['expand', 'migrate']).optional(),
  /** Overrides of the batch settings for this execution. */
  settings: settingsOverridesSchema.optional(),
  /** The drain gate's view of the new release, per ECS service name: task definition ARN or family:revision. */
  newTaskDefinitions: z.record(z.string().min(1), z.string().min(1)).optional(),
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
    `Invalid execution input: ${problems.join('; ')}. Accepted fields: targetRelease, stopAfter ("expand" or "migrate"), settings {${Object.keys(settingsOverridesSchema.shape).join(', ')}}, newTaskDefinitions.`,
  );
}
