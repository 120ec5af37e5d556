/**
 * A prop of the construct (or of the app's configuration) that cannot work, refused at synth. `prop` names it, as
 * the user wrote it (`drainSource`, `batchSettings`, ...); the message says what is wrong and what was given.
 */
export class ConstructPropsError extends Error {
  override readonly name = 'ConstructPropsError';

  constructor(
    readonly prop: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
