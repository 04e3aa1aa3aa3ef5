"""A small Replicate-compatible HTTP server for tests, benchmarks and users' CI.

It imitates the subset of Replicate's HTTP API that the official ``replicate`` Python client uses for
s9's video models, so the real client (pointed here with ``REPLICATE_BASE_URL`` or
``replicate.Client(base_url=...)``) runs unchanged against it:

* ``GET /v1/account`` (the token's owner)
* ``POST /v1/files`` (multipart field ``content``), ``GET /v1/files``, ``GET|DELETE /v1/files/<id>``,
  ``GET /v1/files/<id>/download``
* ``GET /v1/models/<owner>/<name>`` -- the model with its latest version's ``openapi_schema`` (the ``Input``
  component, enums behind ``allOf``/``$ref`` as published schemas write them); 404/410 for a gone model
* ``POST /v1/models/<owner>/<name>/predictions`` (honours ``Prefer: wait[=N]``: the response is held until
  the prediction reaches any terminal state -- a concurrent cancel included -- or N seconds pass; and
  ``Cancel-After``: a deadline at which the prediction ends ``aborted`` if it had not started, else
  ``canceled``, shown as ``deadline``)
* ``GET /v1/predictions`` -- newest first, cursor pagination: ``next``/``previous`` are full URLs with an
  opaque ``?cursor=``, like the real API; ``created_after``/``created_before`` filters, kept by the cursors;
  full prediction objects (``input``, ``model``, ``created_at``, ``status``, ``urls``...); ``list_page_size``
  per page (100, as the real API); ``list_omits_input`` leaves ``input`` out, for clients that must cope
  with a listing that does. A prediction's data is removed ``output_ttl`` seconds after it ends (an hour, as
  the real API does for predictions made by API).
* ``GET /v1/predictions/<id>``, ``POST /v1/predictions/<id>/cancel``
* ``GET /v1/outputs/<id>.mp4`` -- the rendered clip (a real H.264/AAC MP4 from ``s9.video.render_clip``)
* ``/_fake/...`` -- unauthenticated introspection and runtime fault injection for tests.

Deliberately independent of s9's model specs and backends (it keeps its own schema table, `schemas`), so it
is a second opinion on them rather than an echo. Stdlib only, apart from Pillow for the placeholder first
frame and ``s9.video`` for rendering, both imported lazily.

Load (``FakeConfig``, CLI flags): ``create_limit_per_minute`` enforces the account's create limit as the real API
does (a burst of ``create_burst``, then 429 "Your rate limit resets in ~Ns." with a Retry-After); ``latency`` and
``latency_jitter`` set how long predictions take; a create held by ``Prefer: wait`` sleeps until its prediction
can change, so hundreds held at once cost the server nothing; ``shared_renders`` serves one clip per shape.

Faults (``FakeConfig``, ``/_fake/config``, CLI flags): 429s and 5xx on create, 503 on status checks, failing
uploads, truncated downloads, expired outputs (410), E005 flagging, gone models (``gone_models``), a live
schema that differs from the table (``schema_patches``), and ``create_then_error`` -- a create that DOES make
the prediction but answers 502 at once, as a gateway giving up on a held create would, so a client that
retries blindly pays twice.

Differences from the real service worth knowing:

* Output URLs live on this server (``<base>/v1/outputs/<id>.mp4``) instead of a separate delivery host.
  Like the real delivery host they need no token (set ``auth_outputs`` to require one).
* Over plain ``http`` the client leaves output URLs as ``str`` (``helpers.transform_output`` only wraps
  ``https:``/``data:`` URLs in ``FileOutput``); start the server with a certificate to get ``FileOutput``.
  The client trusts it via ``SSL_CERT_FILE=<ca.pem>`` (httpx reads it when the client builds its
  transport) or ``replicate.Client(transport=httpx.HTTPTransport(verify=ssl_context))``; a plain
  ``verify=`` kwarg is silently ignored because the client always passes its own transport.
* Unknown input fields are rejected with 422 (the schemas are closed), which is stricter than some models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .faults import FakeConfig
    from .server import FakeReplicate
    from .state import E005

__all__ = ["E005", "FakeConfig", "FakeReplicate"]

# Loaded on first use: `s9.cli` mounts the command (`s9.fake.cli`), and a real run must not pay for importing
# the server, its routes and its tables just because this package is imported.
_LAZY = {"E005": "state", "FakeConfig": "faults", "FakeReplicate": "server"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
