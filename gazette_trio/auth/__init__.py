"""Authorization and TLS, as Gazette does them.

- `capabilities`: the capability bits (Gazette's values) and their check;
- `claims`: what a token grants, and its JSON form (Go's, byte for byte);
- `tokens`: the shared keys, signing and verifying HS256/HS384 JWTs;
- `authorizer`: the claims and token each outgoing RPC carries;
- `verifier`: checking an incoming call's token and capability;
- `tls`: TLS contexts for servers and clients from certificate files;
- `settings`: a process's security settings (keys, token, certificates)
  turned into dial credentials, a verifier and a server TLS context;
- `cli`: `gazette-trio auth token` and `auth verify`.

docs/security.md describes the model, its threats and its setup.
"""

from .capabilities import ALL, APPEND, APPLY, LIST, READ, REPLICATE
from .claims import Claims
from .tokens import Keys, KeysError, TokenError
from .verifier import OPEN, Verifier

__all__ = [
    "ALL",
    "APPEND",
    "APPLY",
    "LIST",
    "OPEN",
    "READ",
    "REPLICATE",
    "Claims",
    "Keys",
    "KeysError",
    "TokenError",
    "Verifier",
]
