/**
 * An answer of the emulated RDS Data API that is an error: the SDK builds the exception named `name` from it.
 * HTTP statuses follow the `httpError` traits of the service model in @aws-sdk/client-rds-data.
 */
export class DataApiError extends Error {
  override readonly name: string;
  constructor(
    name: string,
    message: string,
    /** Extra members of the exception's body (StatementTimeoutException's dbConnectionId). */
    readonly members: Readonly<Record<string, unknown>> = {},
  ) {
    super(message);
    this.name = name;
  }

  get status(): number {
    return STATUS[this.name] ?? 400;
  }
}

/** From the service model: every other exception of the RDS Data API (and ThrottlingException) is a 400. */
const STATUS: Readonly<Record<string, number>> = {
  AccessDeniedException: 403,
  ForbiddenException: 403,
  NotFoundException: 404,
  DatabaseNotFoundException: 404,
  TransactionNotFoundException: 404,
  InternalServerErrorException: 500,
  ServiceUnavailableError: 503,
  DatabaseUnavailableException: 504,
};

export const badRequest = (message: string) => new DataApiError('BadRequestException', message);

/** The default message of an injected fault, close to what the real service says. */
export function faultMessage(name: string): string {
  switch (name) {
    case 'DatabaseResumingException':
      return 'The Aurora DB instance is resuming after being auto-paused. Please wait a few seconds and try again.';
    case 'ThrottlingException':
      return 'Rate exceeded';
    case 'InternalServerErrorException':
      return 'An internal error occurred.';
    case 'DatabaseUnavailableException':
      return 'The writer instance is not available.';
    case 'StatementTimeoutException':
      return 'Request timed out';
    default:
      return `Injected ${name}`;
  }
}
