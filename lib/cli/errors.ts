/** An error the CLI reports as one line and exit status 1. */
export class CliError extends Error {
  constructor(
    message: string,
    /** Print the usage hint after the message. */
    readonly usage = false,
  ) {
    super(message);
    this.name = 'CliError';
  }
}
