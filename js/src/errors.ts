/**
 * The errors a token source throws. Every one is a {@link SvctokenError}; `instanceof` the
 * subclass (or `kind`) tells which, and `permanent` whether waiting can help.
 *
 * No error ever holds a client secret, a private key, an assertion or a token: messages name
 * the issuer, the endpoint and the OAuth error the issuer sent, nothing the caller could leak
 * by logging the error.
 *
 * @module
 */

/** What went wrong, for code that switches on it rather than on classes. */
export type SvctokenErrorKind = "oauth" | "discovery" | "network" | "protocol" | "config";

/** The base of every error this package throws. */
export class SvctokenError extends Error {
  /** Which subclass this is. */
  readonly kind: SvctokenErrorKind;
  /**
   * True when retrying the same request can't succeed until something changes (a wrong secret,
   * an unknown audience, a discovery document for another issuer): the token source then stops
   * retrying by itself until {@link TokenSource.forceRefresh}. False for outages and timeouts,
   * which it retries with backoff.
   */
  readonly permanent: boolean;

  constructor(kind: SvctokenErrorKind, message: string, permanent: boolean, options?: ErrorOptions) {
    super(message, options);
    this.name = "SvctokenError";
    this.kind = kind;
    this.permanent = permanent;
  }
}

/**
 * OAuth error codes that retrying can't fix (RFC 6749 section 5.2, RFC 8693 section 2.2.2):
 * every code but `server_error`, `temporarily_unavailable` and codes this package doesn't know.
 */
const PERMANENT_CODES = new Set([
  "invalid_request",
  "invalid_client",
  "invalid_grant",
  "unauthorized_client",
  "unsupported_grant_type",
  "invalid_scope",
  "invalid_target",
]);

/**
 * The issuer refused the token request with an RFC 6749 error body: `error` is its OAuth error
 * code (`invalid_client` for a rejected secret or assertion, `invalid_scope`, `invalid_target`
 * for an audience the client may not ask for, `temporarily_unavailable`, ...).
 */
export class OAuthError extends SvctokenError {
  /** The OAuth `error` code, as the issuer sent it. */
  readonly error: string;
  /** The issuer's `error_description`, when it sent one. */
  readonly errorDescription: string | undefined;
  /** The HTTP status of the answer (400, 401, 429, 503, ...). */
  readonly status: number;
  /** From `Retry-After` (429 and 503), in milliseconds. */
  readonly retryAfterMs: number | undefined;

  constructor(
    status: number,
    error: string,
    errorDescription: string | undefined,
    retryAfterMs: number | undefined,
  ) {
    const detail = errorDescription === undefined ? "" : `: ${errorDescription}`;
    super(
      "oauth",
      `the issuer refused the token request (HTTP ${status}, ${error}${detail})`,
      PERMANENT_CODES.has(error) && status !== 429,
    );
    this.name = "OAuthError";
    this.error = error;
    this.errorDescription = errorDescription;
    this.status = status;
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * The issuer's discovery document (`<issuer>/.well-known/openid-configuration`) could not be
 * used: unreachable or malformed (retried), or written for another issuer (the mix-up check,
 * permanent: the `issuer` option is wrong, or something answers in the issuer's place).
 */
export class DiscoveryError extends SvctokenError {
  constructor(message: string, permanent: boolean, options?: ErrorOptions) {
    super("discovery", message, permanent, options);
    this.name = "DiscoveryError";
  }
}

/** The issuer could not be reached, or did not answer in time. Retried with backoff. */
export class NetworkError extends SvctokenError {
  constructor(message: string, options?: ErrorOptions) {
    super("network", message, false, options);
    this.name = "NetworkError";
  }
}

/** The issuer answered something that is not an OAuth token response or error. Retried. */
export class ProtocolError extends SvctokenError {
  constructor(message: string) {
    super("protocol", message, false);
    this.name = "ProtocolError";
  }
}

/** The options can't work (no credential, two credentials, an unreadable private key, ...). */
export class ConfigError extends SvctokenError {
  constructor(message: string, options?: ErrorOptions) {
    super("config", message, true, options);
    this.name = "ConfigError";
  }
}
