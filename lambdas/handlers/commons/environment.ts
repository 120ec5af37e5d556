import * as z from 'zod/mini';
import '../../core/validation.ts';
import type { DrainSourceConfig } from '../../core/drain/drain-gate.ts';
import { settingsOverridesSchema, type SettingsOverrides } from '../../core/settings.ts';

/**
 * The Lambda environment of the upgrade functions: the construct writes it with `lambdaEnvironmentVariables`, every
 * handler reads it back with `parseLambdaEnvironment`, and both go through the one schema below, so what the
 * construct writes is what the handlers can read.
 */
export interface LambdaEnvironment {
  readonly clusterArn: string;
  readonly secretArn: string;
  readonly databaseName: string;
  /** File name of the compiled catalog, next to the handler in the bundle. */
  readonly catalogFile: string;
  /** The construct's batch settings. */
  readonly settings: SettingsOverrides;
  /** Where the drain gate looks for the old release. */
  readonly drainSource: DrainSourceConfig;
  readonly drainTimeoutSeconds: number;
}

/** The variable holding each field. */
export const ENV = {
  clusterArn: 'EMC_CLUSTER_ARN',
  secretArn: 'EMC_SECRET_ARN',
  databaseName: 'EMC_DATABASE_NAME',
  catalogFile: 'EMC_CATALOG_FILE',
  settings: 'EMC_SETTINGS',
  drainSource: 'EMC_DRAIN_SOURCE',
  drainTimeoutSeconds: 'EMC_DRAIN_TIMEOUT_SECONDS',
} as const satisfies Record<keyof LambdaEnvironment, string>;

const nonEmpty = z.string().check(z.minLength(1));

/** A variable holding JSON: the text must parse, then match `schema`. */
function json<T>(schema: z.ZodMiniType<T>) {
  return z.pipe(
    z.string(),
    z.pipe(
      z.transform((text: string, ctx) => {
        try {
          return JSON.parse(text) as unknown;
        } catch (error) {
          ctx.issues.push({ code: 'custom', message: `not valid JSON (${(error as Error).message})`, input: text });
          return z.NEVER;
        }
      }),
      schema,
    ),
  );
}

const drainSourceSchema: z.ZodMiniType<DrainSourceConfig> = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('ecs'),
    services: z.array(z.strictObject({ cluster: nonEmpty, service: nonEmpty })).check(z.minLength(1)),
  }),
  z.strictObject({
    kind: z.literal('database-sessions'),
    applicationNamePattern: nonEmpty,
    applicationRole: z.optional(nonEmpty),
  }),
]);

const environmentSchema = z.object({
  [ENV.clusterArn]: nonEmpty,
  [ENV.secretArn]: nonEmpty,
  [ENV.databaseName]: nonEmpty,
  [ENV.catalogFile]: nonEmpty,
  [ENV.settings]: json(settingsOverridesSchema),
  [ENV.drainSource]: json(drainSourceSchema),
  [ENV.drainTimeoutSeconds]: z.pipe(
    z.string().check(z.regex(/^[1-9][0-9]*$/, { message: 'must be a whole number of seconds' })),
    z.transform(Number),
  ),
});

/** A Lambda environment that does not match the schema: names every variable that is missing or malformed. */
export class LambdaEnvironmentError extends Error {
  override readonly name = 'LambdaEnvironmentError';
}

/** Reads the environment (process.env in Lambda); throws LambdaEnvironmentError naming each bad variable. */
export function parseLambdaEnvironment(variables: Readonly<Record<string, string | undefined>>): LambdaEnvironment {
  const parsed = environmentSchema.safeParse(variables);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => {
      const [variable, ...path] = i.path.map(String);
      const value = variables[variable!];
      const what = value === undefined || value === '' ? 'is not set' : `${path.length > 0 ? `"${path.join('.')}" ` : ''}${i.message}`;
      return `${variable} ${what}`;
    });
    throw new LambdaEnvironmentError(
      `The function's environment is not as the ExpandMigrateContractUpgrade construct sets it: ${problems.join('; ')}.`,
    );
  }
  const v = parsed.data;
  return {
    clusterArn: v[ENV.clusterArn],
    secretArn: v[ENV.secretArn],
    databaseName: v[ENV.databaseName],
    catalogFile: v[ENV.catalogFile],
    settings: v[ENV.settings],
    drainSource: v[ENV.drainSource],
    drainTimeoutSeconds: v[ENV.drainTimeoutSeconds],
  };
}

/** The variables for `environment`, as the construct sets them; checked by parsing them back. */
export function lambdaEnvironmentVariables(environment: LambdaEnvironment): Record<string, string> {
  const variables = {
    [ENV.clusterArn]: environment.clusterArn,
    [ENV.secretArn]: environment.secretArn,
    [ENV.databaseName]: environment.databaseName,
    [ENV.catalogFile]: environment.catalogFile,
    [ENV.settings]: JSON.stringify(environment.settings),
    [ENV.drainSource]: JSON.stringify(environment.drainSource),
    [ENV.drainTimeoutSeconds]: String(environment.drainTimeoutSeconds),
  };
  parseLambdaEnvironment(variables);
  return variables;
}
