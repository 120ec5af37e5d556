import type { App } from 'aws-cdk-lib';
import { z } from 'zod';
import { DrainSource } from './drain-source.ts';

/**
 * The deployable app's settings, read from cdk.json context (or `cdk deploy -c key=value`). Every key is prefixed
 * `emc:`. Errors name the context key.
 */
const contextSchema = z.strictObject({
  clusterArn: z.string().optional(),
  secretArn: z.string().optional(),
  secretKmsKeyArn: z
    .string()
    .regex(/^arn:[^:]+:kms:[^:]+:\d{12}:key\/[A-Za-z0-9-]+$/, 'must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)')
    .optional(),
  databaseName: z.string().default('postgres'),
  migrationsDirectory: z.string().default('demo/migrations'),
  ecsServices: z.array(z.strictObject({ cluster: z.string(), serviceName: z.string() })).optional(),
  drainApplicationNamePattern: z.string().optional(),
  drainApplicationRole: z.string().optional(),
  failureTopicArn: z.string().optional(),
  demoDatabase: z.boolean().default(false),
});

export type AppConfig = Omit<z.infer<typeof contextSchema>, 'ecsServices' | 'drainApplicationNamePattern' | 'drainApplicationRole'> & {
  readonly drainSource: DrainSource | undefined;
};

export const CONTEXT_PREFIX = 'emc:';

export function readAppConfig(app: App): AppConfig {
  // Only known keys are read below: refuse the others, so a misspelt key never silently means the default.
  const known = new Set(Object.keys(contextSchema.shape).map((key) => `${CONTEXT_PREFIX}${key}`));
  const unknown = Object.keys(app.node.getAllContext() as Record<string, unknown>).filter(
    (key) => key.startsWith(CONTEXT_PREFIX) && !known.has(key),
  );
  if (unknown.length > 0) {
    throw new Error(
      `Invalid cdk context: unknown key${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `"${k}"`).join(', ')}; the keys are ${[...known].map((k) => `"${k}"`).join(', ')}.`,
    );
  }
  const raw: Record<string, unknown> = {};
  for (const key of Object.keys(contextSchema.shape)) {
    let value = app.node.tryGetContext(`${CONTEXT_PREFIX}${key}`);
    // `-c key=value` arrives as a string; JSON-typed keys are parsed.
    if (typeof value === 'string' && (key === 'ecsServices' || key === 'demoDatabase')) {
      try {
        value = JSON.parse(value);
      } catch {
        throw new Error(`cdk context "${CONTEXT_PREFIX}${key}" must be JSON, got ${value}`);
      }
    }
    if (value !== undefined) raw[key] = value;
  }
  const parsed = contextSchema.safeParse(raw);
  if (!parsed.success) {
    throw new Error(
      `Invalid cdk context: ${parsed.error.issues.map((i) => `"${CONTEXT_PREFIX}${i.path.join('.')}": ${i.message}`).join('; ')}`,
    );
  }
  const { ecsServices, drainApplicationNamePattern, drainApplicationRole, ...rest } = parsed.data;
  if (drainApplicationRole !== undefined && !drainApplicationNamePattern) {
    throw new Error(
      `cdk context: "${CONTEXT_PREFIX}drainApplicationRole" belongs to the database-sessions drain source: set "${CONTEXT_PREFIX}drainApplicationNamePattern" too.`,
    );
  }
  if (ecsServices && drainApplicationNamePattern) {
    throw new Error(
      `cdk context: set one drain source, "${CONTEXT_PREFIX}ecsServices" or "${CONTEXT_PREFIX}drainApplicationNamePattern", not both.`,
    );
  }
  return {
    ...rest,
    drainSource: ecsServices
      ? DrainSource.ecsServices(ecsServices)
      : drainApplicationNamePattern
        ? DrainSource.databaseSessions(drainApplicationNamePattern, { applicationRole: drainApplicationRole })
        : undefined,
  };
}
