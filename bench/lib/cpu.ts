import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** CPU time, in ms, used so far by each party of a measurement, and the wall clock it was read at. */
export interface CpuReading {
  readonly wallMs: number;
  /** This Node.js process: the engine, the emulator, the samplers. */
  readonly runnerMs: number;
  /** The postmaster and every backend (a backend that exited is in the postmaster's children times). */
  readonly postgresMs: number | undefined;
  readonly workloadMs: number | undefined;
  /** Every process of the machine (other work on it included), from /proc/stat. */
  readonly machineMs: number | undefined;
}

/** CPU used between two readings, in ms of CPU time and as a share of the wall time (1 = one core busy). */
export interface CpuShare {
  readonly wallMs: number;
  readonly runnerCores: number;
  readonly postgresCores: number | undefined;
  readonly workloadCores: number | undefined;
  readonly machineCores: number | undefined;
}

let ticksPerSecond: number | undefined;
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** /proc/<pid>/stat after the command name: [state, ppid, ..., utime (11), stime, cutime, cstime], in ticks. */
function procStat(pid: number | string): { ppid: number; own: number; children: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(fields[1]), own: Number(fields[11]) + Number(fields[12]), children: Number(fields[13]) + Number(fields[14]) };
  } catch {
    return undefined;
  }
}

/** Reads CPU times on Linux; where /proc is missing, only the runner's own time is known. */
export class CpuMeter {
  constructor(
    /** The postmaster's pid (the parent of any backend). */
    private readonly postmasterPid: number | undefined,
    private readonly workloadPid?: number,
  ) {}

  read(): CpuReading {
    const usage = process.cpuUsage();
    const ms = (ticks: number) => (ticks / clockTicks()) * 1000;
    return {
      wallMs: performance.now(),
      runnerMs: (usage.user + usage.system) / 1000,
      postgresMs: this.postmasterPid === undefined ? undefined : postgresTicks(this.postmasterPid, ms),
      workloadMs: this.workloadPid === undefined ? undefined : mapDefined(procStat(this.workloadPid), (s) => ms(s.own)),
      machineMs: machineTicks(ms),
    };
  }

  static share(from: CpuReading, to: CpuReading): CpuShare {
    const wallMs = to.wallMs - from.wallMs;
    const cores = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? undefined : (b - a) / wallMs);
    return {
      wallMs,
      runnerCores: (to.runnerMs - from.runnerMs) / wallMs,
      postgresCores: cores(from.postgresMs, to.postgresMs),
      workloadCores: cores(from.workloadMs, to.workloadMs),
      machineCores: cores(from.machineMs, to.machineMs),
    };
  }
}

function postgresTicks(postmasterPid: number, ms: (ticks: number) => number): number | undefined {
  const postmaster = procStat(postmasterPid);
  if (!postmaster) return undefined;
  let ticks = postmaster.own + postmaster.children;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = procStat(entry);
    if (stat?.ppid === postmasterPid) ticks += stat.own;
  }
  return ms(ticks);
}

/** Busy time of all CPUs: user, nice, system, irq, softirq, steal (not idle, not iowait). */
function machineTicks(ms: (ticks: number) => number): number | undefined {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields;
    return ms(user + nice + system + irq + softirq + steal);
  } catch {
    return undefined;
  }
}

function mapDefined<T, U>(value: T | undefined, f: (v: T) => U): U | undefined {
  return value === undefined ? undefined : f(value);
}

/** The parent of a process (the postmaster, for a backend's pid); undefined where /proc is missing. */
export function parentPid(pid: number): number | undefined {
  return procStat(pid)?.ppid;
}
