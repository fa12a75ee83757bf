/**
 * svctoken for Node.js: short-lived service tokens for backends that call Convex, or any API
 * that verifies JWTs, as themselves.
 *
 * - {@link createTokenSource}: fetches tokens from a svctoken issuer (client secret or
 *   `private_key_jwt`), caches one, refreshes it ahead of expiry, one request for any number
 *   of concurrent callers. `source.fetchToken` plugs into `ConvexClient.setAuth`.
 * - {@link withServiceAuth}: the official `ConvexHttpClient` with a token on every call, safe to
 *   share across concurrent requests.
 * - `svctoken/convex`: `requireService` and `actingFor`, for the Convex functions these tokens
 *   call.
 *
 * @module
 */
export { createTokenSource, type TokenSource, type TokenSourceOptions } from "./tokenSource.js";
export { withServiceAuth, type ServiceConvexClient, type WithServiceAuthOptions } from "./convexHttp.js";
export {
  ConfigError,
  DiscoveryError,
  NetworkError,
  OAuthError,
  ProtocolError,
  SvctokenError,
  type SvctokenErrorKind,
} from "./errors.js";
export type { JsonWebKeyLike } from "./oauth.js";
