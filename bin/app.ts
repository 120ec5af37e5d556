#!/usr/bin/env node
// The deployable CDK app (cdk.json: "app"). Configured from cdk.json context; see docs/operators.md.
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { readAppConfig, CONTEXT_PREFIX } from '../lib/app-config.ts';
import { DemoDatabaseStack } from '../lib/demo-database-stack.ts';
import { UpgradeStack } from '../lib/upgrade-stack.ts';

const app = new App();
const config = readAppConfig(app);
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
const env = { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION };

if (config.demoDatabase) {
  new DemoDatabaseStack(app, 'EmcUpgradeDemo', {
    env,
    migrationsDirectory: config.migrationsDirectory,
    failureTopicArn: config.failureTopicArn,
  });
} else {
  const missing = (['clusterArn', 'secretArn'] as const).filter((key) => !config[key]);
  if (missing.length > 0 || !config.drainSource) {
    throw new Error(
      `Set ${[...missing.map((k) => `"${CONTEXT_PREFIX}${k}"`), ...(config.drainSource ? [] : [`a drain source ("${CONTEXT_PREFIX}ecsServices" or "${CONTEXT_PREFIX}drainApplicationNamePattern")`])].join(', ')} in cdk.json context (or -c key=value), or "${CONTEXT_PREFIX}demoDatabase": true to try it on a new Aurora Serverless v2 cluster.`,
    );
  }
  new UpgradeStack(app, 'EmcUpgrade', {
    env,
    clusterArn: config.clusterArn!,
    secretArn: config.secretArn!,
    secretKmsKeyArn: config.secretKmsKeyArn,
    databaseName: config.databaseName,
    migrationsDirectory: config.migrationsDirectory,
    drainSource: config.drainSource,
    failureTopicArn: config.failureTopicArn,
  });
}
