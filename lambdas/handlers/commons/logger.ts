import { Logger } from '@aws-lambda-powertools/logger';

/**
 * The one structured JSON logger of every handler. Each log line carries the execution ARN and, while a step runs,
 * its step identifier. Never log row data or secrets: only identifiers, counts and durations.
 */
export const logger = new Logger({ serviceName: 'emc-upgrade' });
