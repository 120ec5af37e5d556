/** Reads a configuration variable the construct sets; a missing one is an error naming it, never `undefined`. */
export function requiredEnv(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') {
    throw new Error(`The environment variable ${name} is not set; the ExpandMigrateContractUpgrade construct sets it.`);
  }
  return value;
}

/** A JSON configuration variable, parsed, with the variable named in any error. */
export function requiredJsonEnv<T>(name: string): T {
  const text = requiredEnv(name);
  try {
    return JSON.parse(text) as T;
  } catch (error) {
    throw new Error(`The environment variable ${name} is not valid JSON: ${(error as Error).message}`);
  }
}

/** Environment variables the construct sets on every function. */
export const ENV = {
  clusterArn: 'EMC_CLUSTER_ARN',
  secretArn: 'EMC_SECRET_ARN',
  databaseName: 'EMC_DATABASE_NAME',
  /** File name of the compiled catalog, next to the handler in the bundle. */
  catalogFile: 'EMC_CATALOG_FILE',
  /** JSON: the construct's batch settings (SettingsOverrides). */
  settings: 'EMC_SETTINGS',
  /** JSON: the drain gate's source (DrainSourceConfig). */
  drainSource: 'EMC_DRAIN_SOURCE',
  drainTimeoutSeconds: 'EMC_DRAIN_TIMEOUT_SECONDS',
} as const;
