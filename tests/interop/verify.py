#!/usr/bin/env python3
"""Verifies svctoken JWTs with PyJWT (+ cryptography), an implementation independent of ours.

stdin:  {"jwks_uri": "http://127.0.0.1:PORT/...", "cases": [{"token", "issuer", "audience", "algorithms"}]}
        ("jwks": {"keys": [...]} inline instead of "jwks_uri")
stdout: {"implementation": "pyjwt <version>",
         "results": [{"ok": true, "claims": {...}} | {"ok": false, "error": "<code>: <message>"}]}
        one result per case, in case order.
exit:   0 when it ran (whatever the verdicts), 2 for bad input, 3 when PyJWT or cryptography is
        not installed (run scripts/install-test-deps).

Run it with tests/interop/.venv/bin/python.
"""

import json
import sys
from urllib.parse import urlparse

EXIT_BAD_INPUT = 2
EXIT_NOT_INSTALLED = 3
REQUIRED_CLAIMS = ["exp", "iat", "iss", "sub", "aud"]


def fail(code, message):
    sys.stderr.write(f"verify.py: {message}\n")
    sys.exit(code)


def is_non_empty_str(value):
    return isinstance(value, str) and len(value) > 0


def parse_input(text):
    try:
        doc = json.loads(text)
    except ValueError as e:
        fail(EXIT_BAD_INPUT, f"stdin is not JSON: {e}")
    if not isinstance(doc, dict):
        fail(EXIT_BAD_INPUT, "stdin must be a JSON object")
    has_uri = "jwks_uri" in doc
    has_inline = "jwks" in doc
    if has_uri == has_inline:
        fail(EXIT_BAD_INPUT, 'give exactly one of "jwks_uri" and "jwks"')
    if has_uri:
        uri = doc["jwks_uri"]
        if not is_non_empty_str(uri) or urlparse(uri).scheme not in ("http", "https"):
            fail(EXIT_BAD_INPUT, '"jwks_uri" must be an http(s) URL')
    elif not isinstance(doc["jwks"], dict) or not isinstance(doc["jwks"].get("keys"), list):
        fail(EXIT_BAD_INPUT, '"jwks" must be an object with a "keys" array')
    cases = doc.get("cases")
    if not isinstance(cases, list):
        fail(EXIT_BAD_INPUT, '"cases" must be an array')
    for i, case in enumerate(cases):
        if not isinstance(case, dict):
            fail(EXIT_BAD_INPUT, f"case {i} is not an object")
        for field in ("token", "issuer", "audience"):
            if not is_non_empty_str(case.get(field)):
                fail(EXIT_BAD_INPUT, f'case {i}: "{field}" must be a non-empty string')
        algorithms = case.get("algorithms")
        if (
            not isinstance(algorithms, list)
            or not algorithms
            or not all(is_non_empty_str(a) for a in algorithms)
        ):
            fail(EXIT_BAD_INPUT, f'case {i}: "algorithms" must be a non-empty array of strings')
    return doc


def main():
    doc = parse_input(sys.stdin.read())

    try:
        import jwt
        import cryptography  # noqa: F401  (PyJWT needs it for ES256/RS256/EdDSA)
    except ImportError as e:
        fail(EXIT_NOT_INSTALLED, f"cannot import PyJWT/cryptography ({e}); run scripts/install-test-deps")

    if "jwks_uri" in doc:
        client = jwt.PyJWKClient(doc["jwks_uri"], timeout=10)

        def signing_key(token):
            return client.get_signing_key_from_jwt(token)

    else:
        key_set = None
        key_set_error = None
        try:
            key_set = jwt.PyJWKSet.from_dict(doc["jwks"])
        except Exception as e:  # reported per case, like a bad remote JWKS would be
            key_set_error = e

        def signing_key(token):
            if key_set_error is not None:
                raise key_set_error
            kid = jwt.get_unverified_header(token).get("kid")
            if kid is None:
                if len(key_set.keys) == 1:
                    return key_set.keys[0]
                raise jwt.PyJWKSetError("token has no kid and the JWK Set has several keys")
            return key_set[kid]

    results = []
    for case in doc["cases"]:
        try:
            key = signing_key(case["token"])
            claims = jwt.decode(
                case["token"],
                key,
                algorithms=case["algorithms"],
                audience=case["audience"],
                issuer=case["issuer"],
                options={"require": REQUIRED_CLAIMS},
            )
            results.append({"ok": True, "claims": claims})
        except Exception as e:
            results.append({"ok": False, "error": f"{type(e).__name__}: {e}"})

    out = {"implementation": f"pyjwt {jwt.__version__}", "results": results}
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
