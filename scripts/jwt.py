#!/usr/bin/env python3
"""Prints an HS256 JSON Web Token, as an auth service would sign one for
vibescaling's HTTP API (PostgREST checks it with its jwt-secret).

    scripts/jwt.py --secret-file F --role vibescaling_user --sub tenant-42 [--ttl 3600]
    scripts/jwt.py --secret-file F --role vibescaling_webhook --ttl 0     (no expiry)

Standard library only, so that the demo and the tests need nothing else.
"""
import argparse
import base64
import hashlib
import hmac
import json
import time


def b64url(raw: bytes) -> str:
    """Base64url without padding (RFC 7515, section 2)."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def sign(secret: str, claims: dict) -> str:
    """The compact JWS of claims, signed with HMAC-SHA256 under secret."""
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
    mac = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(mac)}"


def main() -> None:
    """Reads the arguments and prints the token."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--secret-file", required=True, help="file holding PostgREST's jwt-secret")
    ap.add_argument("--role", required=True)
    ap.add_argument("--sub", help="the tenant (omitted for the webhook and operator roles)")
    ap.add_argument("--ttl", type=int, default=3600, help="seconds until it expires; 0: never")
    args = ap.parse_args()
    with open(args.secret_file) as f:
        secret = f.read().strip()
    claims = {"role": args.role}
    if args.sub:
        claims["sub"] = args.sub
    if args.ttl > 0:
        claims["exp"] = int(time.time()) + args.ttl
    print(sign(secret, claims))


if __name__ == "__main__":
    main()
