// asl-validator 4 ships no type declarations. Its CommonJS export is the validator function itself.
declare module 'asl-validator' {
  namespace aslValidator {
    interface ValidationOptions {
      /** Check the syntax of path expressions (InputPath, ResultPath, ...). @default true */
      readonly checkPaths?: boolean;
      /** Check that Task Resource values are ARNs. @default true */
      readonly checkArn?: boolean;
    }
    interface ValidationError {
      readonly message?: string;
      readonly [key: string]: unknown;
    }
    interface ValidationResult {
      readonly isValid: boolean;
      readonly errors: readonly ValidationError[];
      errorsText(separator?: string): string;
    }
  }
  /** Validates a state machine definition. Note: it sets `QueryLanguage` on every state of the object it is given. */
  function aslValidator(definition: unknown, options?: aslValidator.ValidationOptions): aslValidator.ValidationResult;
  export = aslValidator;
}
