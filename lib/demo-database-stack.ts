import { Duration, RemovalPolicy, Stack, Validations, type StackProps } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as sns from 'aws-cdk-lib/aws-sns';
import type { Construct } from 'constructs';
import { DrainSource } from './drain-source.ts';
import { ExpandMigrateContractUpgrade } from './expand-migrate-contract-upgrade.ts';

export interface DemoDatabaseStackProps extends StackProps {
  readonly migrationsDirectory: string;
  readonly failureTopicArn?: string;
}

/** Name of the demo database inside the demo cluster. */
export const DEMO_DATABASE_NAME = 'app';

/**
 * For trying emc-upgrade on an empty account: an Aurora PostgreSQL 17 Serverless v2 cluster with the Data API
 * enabled (it pauses when idle), and the upgrade state machine for it. Not for production data: it is deleted with
 * the stack.
 */
export class DemoDatabaseStack extends Stack {
  readonly cluster: rds.DatabaseCluster;
  readonly upgrade: ExpandMigrateContractUpgrade;

  constructor(scope: Construct, id: string, props: DemoDatabaseStackProps) {
    super(scope, id, props);
    const vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs: 2,
      natGateways: 0,
      subnetConfiguration: [{ name: 'database', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }],
      flowLogs: { all: { trafficType: ec2.FlowLogTrafficType.REJECT } },
    });
    this.cluster = new rds.DatabaseCluster(this, 'Database', {
      engine: rds.DatabaseClusterEngine.auroraPostgres({ version: rds.AuroraPostgresEngineVersion.VER_17_9 }),
      writer: rds.ClusterInstance.serverlessV2('writer'),
      serverlessV2MinCapacity: 0,
      serverlessV2MaxCapacity: 4,
      credentials: rds.Credentials.fromGeneratedSecret('emc_admin'),
      defaultDatabaseName: DEMO_DATABASE_NAME,
      enableDataApi: true,
      storageEncrypted: true,
      iamAuthentication: true,
      port: 15432,
      vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
      backup: { retention: Duration.days(1) },
      deletionProtection: false,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.upgrade = new ExpandMigrateContractUpgrade(this, 'Upgrade', {
      cluster: this.cluster,
      secret: this.cluster.secret!,
      databaseName: DEMO_DATABASE_NAME,
      migrationsDirectory: props.migrationsDirectory,
      drainSource: DrainSource.databaseSessions('demo-app-old%'),
      failureTopic: props.failureTopicArn ? sns.Topic.fromTopicArn(this, 'FailureTopic', props.failureTopicArn) : undefined,
    });
    Validations.of(this.cluster).acknowledge(
      { id: 'AwsSolutions-RDS10', reason: 'A demo cluster, meant to be deleted with its stack.' },
      { id: 'AwsSolutions-SMG4', reason: 'A short-lived demo cluster; rotate the secret of a real cluster.' },
    );
  }
}
