"""Warm manifests: load a YAML manifest, check every part of it, and expand it into requests.

A manifest (`version: 1`) has `defaults` and a list of `endpoints`; each endpoint becomes one
request per combination of its `matrix` params. Loading reports every problem of every file at
once (`FILE:LINE:COL: endpoints[2].ttl: ...`) and touches neither the network nor Redis.
Expansion streams: a matrix of a million combinations is produced one request at a time, and a
`{file: ...}` source is read again for each outer value rather than held in memory.

Secrets: header values that carry credentials (and secret-looking query values) are collected in
`Manifest.secrets`, masked in every URL shown (`PlannedRequest.shown_url`), and never enter a key:
a param named like a credential (`api_key`), or a param, tag or dependency holding one of those
values, is a problem, since every param is part of the entry key (docs/keyspace.md).

URLs: the manifest's own URL text is sent as written, so what cannot be sent that way (a space, a
non-ASCII character, a stray `%`, a bad host or port) is a problem too; values filled in from
params are percent-encoded.

The parts: `templates` (placeholders and how values are written into them), `urls` (what can be
sent), `credentials` (what may not enter a key), `model` (Manifest, Endpoint, PlannedRequest,
the matrix sources), `fields` (the table of settings an endpoint or `defaults` may hold, with
their checks), `reader` (loading and checking), `fastpath` (the entry key compiled once per
endpoint), `plan` (what a run asks for) and `keys` (no two requests write one key).
"""

from cachectl.manifest.credentials import is_secret_param
from cachectl.manifest.model import (
    CACHE_IF_WORDS,
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT_SECONDS,
    FILE_VALUE_KINDS,
    MANIFEST_VERSION,
    MAX_CONCURRENCY,
    MAX_RANGE_VALUE,
    MAX_RATE,
    MAX_RETRIES,
    MAX_TIMEOUT_SECONDS,
    METHODS,
    MIN_RATE,
    Defaults,
    Endpoint,
    FileValues,
    ListValues,
    Manifest,
    PlannedRequest,
    RangeValues,
    Source,
    _product,
)
from cachectl.manifest.plan import Plan
from cachectl.manifest.reader import load_manifest, load_manifests
from cachectl.manifest.templates import Template, _text_of
from cachectl.manifest.urls import mask_query_secrets

__all__ = [
    "CACHE_IF_WORDS",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT_SECONDS",
    "FILE_VALUE_KINDS",
    "MANIFEST_VERSION",
    "MAX_CONCURRENCY",
    "MAX_RANGE_VALUE",
    "MAX_RATE",
    "MAX_RETRIES",
    "MAX_TIMEOUT_SECONDS",
    "METHODS",
    "MIN_RATE",
    "Defaults",
    "Endpoint",
    "FileValues",
    "ListValues",
    "Manifest",
    "Plan",
    "PlannedRequest",
    "RangeValues",
    "Source",
    "Template",
    "_product",
    "_text_of",
    "is_secret_param",
    "load_manifest",
    "load_manifests",
    "mask_query_secrets",
]
