import { Stack, type StackProps } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import type { Construct } from 'constructs';
import type { DrainSource } from './drain-source.ts';
import { ExpandMigrateContractUpgrade, type BatchSettings } from './expand-migrate-contract-upgrade.ts';

export interface UpgradeStackProps extends StackProps {
  readonly clusterArn: string;
  readonly secretArn: string;
  /** ARN of the customer-managed KMS key the secret is encrypted with. @default none (the AWS managed key) */
  readonly secretKmsKeyArn?: string;
  readonly databaseName: string;
  readonly migrationsDirectory: string;
  readonly drainSource: DrainSource;
  readonly batchSettings?: BatchSettings;
  /** ARN of an SNS topic to notify of failed executions. @default none */
  readonly failureTopicArn?: string;
  /** See ExpandMigrateContractUpgradeProps. @default DEFAULT_MAX_MIGRATE_CALLS_PER_EXECUTION */
  readonly maxMigrateCallsPerExecution?: number;
}

/** The deployable stack: the upgrade state machine for one existing Aurora PostgreSQL cluster. */
export class UpgradeStack extends Stack {
  readonly upgrade: ExpandMigrateContractUpgrade;

  constructor(scope: Construct, id: string, props: UpgradeStackProps) {
    super(scope, id, props);
    this.upgrade = new ExpandMigrateContractUpgrade(this, 'Upgrade', {
      clusterArn: props.clusterArn,
      secret: secretsmanager.Secret.fromSecretCompleteArn(this, 'DatabaseSecret', props.secretArn),
      secretEncryptionKey: props.secretKmsKeyArn ? kms.Key.fromKeyArn(this, 'SecretKey', props.secretKmsKeyArn) : undefined,
      databaseName: props.databaseName,
      migrationsDirectory: props.migrationsDirectory,
      drainSource: props.drainSource,
      batchSettings: props.batchSettings,
      maxMigrateCallsPerExecution: props.maxMigrateCallsPerExecution,
      failureTopic: props.failureTopicArn ? sns.Topic.fromTopicArn(this, 'FailureTopic', props.failureTopicArn) : undefined,
      // A name the CLI can find from the stack's name (`emc --stack <name>`).
      stateMachineName: `${this.stackName}-Upgrade`,
    });
  }
}
