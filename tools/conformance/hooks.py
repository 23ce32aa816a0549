"""Schemathesis hooks for Mercato's conformance run (SCHEMATHESIS_HOOKS).

An `Idempotency-Key` promises "this is the same request as before": a key
reused with a different request is answered 422 `idempotency_key_reused`
(draft-ietf-httpapi-idempotency-key-header, 2.7). JSON Schema cannot say that
a header must be unique per request, so schemathesis would reuse the few
short keys it generates across different requests. A well-behaved client
derives one key per distinct request; so does this hook. An identical request
keeps its key (and gets the first answer replayed, which the checks then
judge), and a key the schema calls malformed is left as generated, so the
host's 400 for it is still tested.

The stateful phase is the exception: each of its calls is a new step of a
client's workflow, and its checks assume a POST makes a new resource. A
replayed POST answers the resource made the first time, which an earlier
scenario may have deleted since (then `GET` of it is a correct 404 that the
"created resource not found" check cannot tell from a bug). So there every
call gets a key of its own.
"""

import hashlib
import itertools
import json
import re

import schemathesis
from schemathesis.generation.meta import TestPhase

_STATEFUL_CALLS = itertools.count()

WELL_FORMED = re.compile(r"^[!-~]([ -~]*[!-~])?$")


@schemathesis.hook
def map_case(context, case):
    _own_key(case)
    return case


@schemathesis.hook
def before_call(context, case, kwargs):
    """Phases that build a case without `map_case` get their key here; only
    positive cases, since editing a case makes schemathesis revalidate it
    (a negative one might then forget the header it meant to leave out)."""
    meta = case.meta
    if meta is None or meta.generation.mode.is_positive:
        _own_key(case)


def _own_key(case):
    headers = case.headers
    if not headers:
        return
    name = next((h for h in headers if h.lower() == "idempotency-key"), None)
    if name is None:
        return
    key = headers[name]
    if not isinstance(key, str) or not 1 <= len(key) <= 255 or not WELL_FORMED.match(key):
        return
    others = {k.lower(): str(v) for k, v in headers.items() if k != name}
    step = None
    if case.meta is not None and case.meta.phase.name == TestPhase.STATEFUL:
        step = next(_STATEFUL_CALLS)
    request = json.dumps(
        [case.method, case.formatted_path, case.query, others, case.body, step],
        sort_keys=True,
        default=repr,
    )
    headers[name] = "st-" + hashlib.sha256(request.encode()).hexdigest()


@schemathesis.hook
def filter_body(context, body):
    """A coupon's `valid_from` must come before its `valid_until` (422
    `invalid_validity_window`, documented on the field): a rule between two
    fields, which JSON Schema cannot state, so bodies breaking it are not
    generated as valid ones (fuzzing draws bodies here)."""
    return _window_holds(body)


@schemathesis.hook
def filter_case(context, case):
    """The same rule for cases built whole (the coverage phase)."""
    return _window_holds(case.body)


def _window_holds(body):
    if not isinstance(body, dict):
        return True
    start, end = body.get("valid_from"), body.get("valid_until")
    if not (isinstance(start, str) and isinstance(end, str)):
        return True
    try:
        return _instant(start) < _instant(end)
    except (TypeError, ValueError):
        return True


def _instant(text):
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00"))
