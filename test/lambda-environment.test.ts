import { describe, expect, it } from 'vitest';
import {
  ENV,
  LambdaEnvironmentError,
  lambdaEnvironmentVariables,
  parseLambdaEnvironment,
  type LambdaEnvironment,
} from '../lambdas/handlers/commons/environment.ts';

const ENVIRONMENT: LambdaEnvironment = {
  clusterArn: 'arn:aws:rds:us-east-1:123456789012:cluster:orders',
  secretArn: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:orders-db-AbCdEf',
  databaseName: 'orders',
  catalogFile: 'emc-catalog.json',
  settings: { batchSize: 2000, lockTimeoutMs: 5000 },
  drainSource: { kind: 'ecs', services: [{ cluster: 'arn:aws:ecs:us-east-1:123456789012:cluster/prod', service: 'orders-api' }] },
  drainTimeoutSeconds: 7200,
};
const VARIABLES = lambdaEnvironmentVariables(ENVIRONMENT);

function problemsOf(variables: Record<string, string | undefined>): string {
  try {
    parseLambdaEnvironment(variables);
  } catch (error) {
    expect(error).toBeInstanceOf(LambdaEnvironmentError);
    return (error as Error).message;
  }
  throw new Error('the environment parsed');
}

describe('the Lambda environment: written and read by one schema', () => {
  it('reads back what the construct writes, ignoring the variables Lambda adds', () => {
    expect(VARIABLES[ENV.settings]).toBe('{"batchSize":2000,"lockTimeoutMs":5000}');
    expect(parseLambdaEnvironment({ ...VARIABLES, AWS_REGION: 'us-east-1' })).toEqual(ENVIRONMENT);
    const sessions = { ...ENVIRONMENT, drainSource: { kind: 'database-sessions', applicationNamePattern: 'orders-v41%' } } as const;
    expect(parseLambdaEnvironment(lambdaEnvironmentVariables(sessions))).toEqual(sessions);
  });

  it.each([
    [ENV.clusterArn, undefined, 'EMC_CLUSTER_ARN is not set'],
    [ENV.catalogFile, '', 'EMC_CATALOG_FILE is not set'],
    [ENV.settings, '{batchSize: 2000}', 'EMC_SETTINGS not valid JSON'],
    [ENV.settings, '{"batchSize":0}', 'EMC_SETTINGS "batchSize" '],
    [ENV.settings, '{"batchSise":2000}', 'EMC_SETTINGS '],
    [ENV.drainSource, '{"kind":"ecs","services":[]}', 'EMC_DRAIN_SOURCE "services" '],
    [ENV.drainSource, '{"kind":"sessions"}', 'EMC_DRAIN_SOURCE "kind" '],
    [ENV.drainTimeoutSeconds, '2h', 'EMC_DRAIN_TIMEOUT_SECONDS must be a whole number of seconds'],
  ])('names %s when it is %j', (variable, value, problem) => {
    const message = problemsOf({ ...VARIABLES, [variable]: value });
    expect(message).toMatch(/^The function's environment is not as the ExpandMigrateContractUpgrade construct sets it: /);
    expect(message).toContain(problem);
    // Only the bad variable is named.
    expect(Object.values(ENV).filter((v) => message.includes(v))).toEqual([variable]);
  });

  it('names every bad variable at once', () => {
    const message = problemsOf({ ...VARIABLES, [ENV.secretArn]: undefined, [ENV.drainTimeoutSeconds]: '0' });
    expect(message).toContain('EMC_SECRET_ARN is not set; EMC_DRAIN_TIMEOUT_SECONDS must be a whole number of seconds');
  });

  it('refuses to write what the handlers could not read', () => {
    expect(() => lambdaEnvironmentVariables({ ...ENVIRONMENT, drainTimeoutSeconds: 0.5 })).toThrow(/EMC_DRAIN_TIMEOUT_SECONDS/);
  });
});
