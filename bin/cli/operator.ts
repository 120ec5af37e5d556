import { hostname } from 'node:os';

/** Who runs this command, `<user>@<host>`: named in a hand run's id, in StopExecution's cause and in the history. */
export function operatorName(env: Readonly<Record<string, string | undefined>>): string {
  return `${env['USER'] ?? env['LOGNAME'] ?? 'unknown'}@${hostname()}`;
}
