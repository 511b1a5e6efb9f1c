"""Schemathesis hooks for databrain: NDJSON request bodies (one JSON object per line), which
Schemathesis does not write by itself. Loaded through SCHEMATHESIS_HOOKS by schemathesis.sh."""

import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    rows = value if isinstance(value, list) else [value]
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()
