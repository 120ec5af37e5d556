import { Arn, ArnFormat, Stack } from 'aws-cdk-lib';
import type * as ecs from 'aws-cdk-lib/aws-ecs';
import type { Construct } from 'constructs';
import type { DrainSource as DrainSourceConfig } from '../lambdas/core/drain/drain-gate.ts';
import { sessionPatternProblem } from '../lambdas/core/drain/session-drain.ts';

/** An ECS service running the application whose database is upgraded. */
export interface EcsServiceTarget {
  /** The service's cluster: a construct, or the cluster's ARN. */
  readonly cluster: ecs.ICluster | string;
  /** The service's name (not its ARN). */
  readonly serviceName: string;
}

/** An ECS service resolved to the ARNs the IAM policy and the drain check need. */
export interface ResolvedEcsService {
  readonly clusterArn: string;
  readonly clusterName: string;
  readonly serviceName: string;
  /** The service's ARN, in the cluster's own region and account. */
  readonly serviceArn: string;
}

/**
 * Where the drain gate looks for instances of the old release before contract may run. Always chosen explicitly:
 * the gate is never skipped.
 */
export abstract class DrainSource {
  /**
   * The old release is drained when every running or still-stopping task of each service runs the new release's
   * task definition (from the execution input, or the service's PRIMARY deployment once its rollout completed).
   */
  static ecsServices(services: readonly EcsServiceTarget[]): DrainSource {
    return new EcsDrainSource(services);
  }

  /**
   * For fleets not on ECS (EC2, EKS) and local runs: the old release is drained when no database session whose
   * `application_name` matches this LIKE pattern is connected (e.g. `orders-api/v41%`). An execution may give
   * another pattern for its release in its input (`{ "drain": { "sessions": "orders-api/v42%" } }`).
   *
   * With `applicationRole` (the database role the application connects as), that role's sessions that set no
   * `application_name` count as the old release's too, instead of being invisible; the role must not be the one
   * the upgrade connects as. Give the upgrade's role `pg_read_all_stats` to see when blocking sessions started.
   */
  static databaseSessions(applicationNamePattern: string, options: { readonly applicationRole?: string } = {}): DrainSource {
    return new SessionDrainSource(applicationNamePattern, options.applicationRole);
  }

  /** @internal The configuration the drain handler reads, and the ECS services to grant access to. */
  abstract bind(scope: Construct): { config: DrainSourceConfig; ecsServices: readonly ResolvedEcsService[] };
}

class EcsDrainSource extends DrainSource {
  constructor(private readonly services: readonly EcsServiceTarget[]) {
    super();
  }

  bind(scope: Construct): { config: DrainSourceConfig; ecsServices: readonly ResolvedEcsService[] } {
    if (this.services.length === 0) {
      throw new Error('drainSource: DrainSource.ecsServices() needs at least one service.');
    }
    const resolved = this.services.map((s, index) => resolveService(scope, s, index));
    const seen = new Set<string>();
    for (const s of resolved) {
      const key = `${s.clusterArn}/${s.serviceName}`;
      if (seen.has(key)) throw new Error(`drainSource: ECS service ${s.clusterName}/${s.serviceName} is listed twice.`);
      seen.add(key);
    }
    return {
      config: { kind: 'ecs', services: resolved.map((s) => ({ cluster: s.clusterArn, service: s.serviceName })) },
      ecsServices: resolved,
    };
  }
}

class SessionDrainSource extends DrainSource {
  constructor(
    private readonly pattern: string,
    private readonly applicationRole: string | undefined,
  ) {
    super();
  }

  bind(): { config: DrainSourceConfig; ecsServices: readonly ResolvedEcsService[] } {
    const problem = sessionPatternProblem(this.pattern);
    if (problem) throw new Error(`drainSource: DrainSource.databaseSessions() ${problem}.`);
    if (this.applicationRole !== undefined && !this.applicationRole.trim()) {
      throw new Error('drainSource: DrainSource.databaseSessions() applicationRole must be a role name, got "".');
    }
    return {
      config: {
        kind: 'database-sessions',
        applicationNamePattern: this.pattern,
        ...(this.applicationRole !== undefined ? { applicationRole: this.applicationRole } : {}),
      },
      ecsServices: [],
    };
  }
}

function resolveService(scope: Construct, target: EcsServiceTarget, index: number): ResolvedEcsService {
  if (!/^[A-Za-z0-9_-]{1,255}$/.test(target.serviceName)) {
    throw new Error(
      `drainSource: services[${index}].serviceName must be a service name (letters, digits, "-" and "_"), got "${target.serviceName}".`,
    );
  }
  if (typeof target.cluster !== 'string') {
    const cluster = target.cluster;
    return {
      clusterArn: cluster.clusterArn,
      clusterName: cluster.clusterName,
      serviceName: target.serviceName,
      serviceArn: Stack.of(cluster).formatArn({
        service: 'ecs',
        resource: 'service',
        resourceName: `${cluster.clusterName}/${target.serviceName}`,
        region: cluster.env.region,
        account: cluster.env.account,
      }),
    };
  }
  const arn = target.cluster;
  if (!/^arn:[^:]+:ecs:[^:]+:\d{12}:cluster\/[A-Za-z0-9_-]+$/.test(arn)) {
    throw new Error(
      `drainSource: services[${index}].cluster must be an ECS cluster ARN (arn:aws:ecs:<region>:<account>:cluster/<name>), got "${arn}".`,
    );
  }
  const parts = Arn.split(arn, ArnFormat.SLASH_RESOURCE_NAME);
  const clusterName = parts.resourceName!;
  return {
    clusterArn: arn,
    clusterName,
    serviceName: target.serviceName,
    // The cluster may live in another region or account than the stack: the service is where its cluster is.
    serviceArn: Stack.of(scope).formatArn({ ...parts, resource: 'service', resourceName: `${clusterName}/${target.serviceName}` }),
  };
}
