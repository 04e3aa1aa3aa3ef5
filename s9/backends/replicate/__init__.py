"""The Replicate backend, split by what each part does (as replicate-python splits by resource):

* `client` -- credentials, the shared client and retry policy, the token check, scrubbing the token;
* `files` -- uploading images, once per distinct image;
* `predictions` -- create with backoff and deadline, wait, cancel;
* `recovery` -- finding a prediction whose create never answered, by listing;
* `download` -- saving the clip, refusing what is not http(s), telling expired outputs apart;
* `backend` -- `ReplicateBackend`, the journal's rules gluing them together.
"""

from .backend import ReplicateBackend
from .client import NO_TOKEN, TOKEN_VARS, Policy, resolve_credentials

__all__ = ["NO_TOKEN", "TOKEN_VARS", "Policy", "ReplicateBackend", "resolve_credentials"]
