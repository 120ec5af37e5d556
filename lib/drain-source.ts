import { Arn, ArnFormat, Stack, Token } from 'aws-cdk-lib';
import type * as ecs from 'aws-cdk-lib/aws-ecs';
import type { Construct } from 'constructs';
import type { DrainSourceConfig } from '../lambdas/core/drain/drain-gate.ts';
import { sessionPatternProblem } from '../lambdas/core/drain/session-drain.ts';
import { ConstructPropsError } from './construct-props-error.ts';

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
   * Each service must be in the stack's own account and region, which the synth checks whenever both are known.
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
      throw new ConstructPropsError('drainSource', 'drainSource: DrainSource.ecsServices() needs at least one service.');
    }
    const resolved = this.services.map((s, index) => resolveService(scope, s, index));
    const seen = new Set<string>();
    for (const s of resolved) {
      const key = `${s.clusterArn}/${s.serviceName}`;
      if (seen.has(key)) throw new ConstructPropsError('drainSource', `drainSource: ECS service ${s.clusterName}/${s.serviceName} is listed twice.`);
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
    if (problem) throw new ConstructPropsError('drainSource', `drainSource: DrainSource.databaseSessions() ${problem}.`);
    if (this.applicationRole !== undefined && !this.applicationRole.trim()) {
      throw new ConstructPropsError('drainSource', 'drainSource: DrainSource.databaseSessions() applicationRole must be a role name, got "".');
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
    throw new ConstructPropsError(
      'drainSource',
      `drainSource: services[${index}].serviceName must be a service name (letters, digits, "-" and "_"), got "${target.serviceName}".`,
    );
  }
  if (typeof target.cluster !== 'string') {
    const cluster = target.cluster;
    const clusterLabel = Token.isUnresolved(cluster.clusterName) ? cluster.node.path : cluster.clusterName;
    assertReachable(scope, index, `${target.serviceName} of cluster ${clusterLabel}`, cluster.env);
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
    throw new ConstructPropsError(
      'drainSource',
      `drainSource: services[${index}].cluster must be an ECS cluster ARN (arn:aws:ecs:<region>:<account>:cluster/<name>), got "${arn}".`,
    );
  }
  const parts = Arn.split(arn, ArnFormat.SLASH_RESOURCE_NAME);
  const clusterName = parts.resourceName!;
  assertReachable(scope, index, `${target.serviceName} of cluster ${clusterName}`, { account: parts.account!, region: parts.region! });
  return {
    clusterArn: arn,
    clusterName,
    serviceName: target.serviceName,
    serviceArn: Stack.of(scope).formatArn({ ...parts, resource: 'service', resourceName: `${clusterName}/${target.serviceName}` }),
  };
}

/**
 * The drain function reads ECS with its own role, in its own region: ECS supports no resource-based policies
 * ("Supports resource-based policies: No", How Amazon ECS works with IAM), so another account's services stay out of
 * reach, and its ECS client calls the region it runs in. Compared only when both sides are known at synth: a stack
 * without an explicit env (or a cluster imported by tokens) cannot be checked, and is accepted.
 */
function assertReachable(scope: Construct, index: number, service: string, where: { account: string; region: string }): void {
  const stack = Stack.of(scope);
  const differ = (a: string, b: string) => !Token.isUnresolved(a) && !Token.isUnresolved(b) && a !== b;
  if (differ(where.account, stack.account) || differ(where.region, stack.region)) {
    throw new ConstructPropsError(
      'drainSource',
      `drainSource: services[${index}] (ECS service ${service}) is in account ${where.account}, region ${where.region}, but the drain function runs in account ${stack.account}, region ${stack.region}: its own credentials and region cannot reach that service (ECS has no resource-based policies, and its calls go to the function's region). Deploy the upgrade in the service's account and region, or use DrainSource.databaseSessions().`,
    );
  }
}
