"""Schemathesis hooks of the e2e test `openapi::schemathesis_finds_nothing_in_any_service`.

The test loads this file through `SCHEMATHESIS_HOOKS`. It holds the one rule
of order-service that JSON Schema cannot state: a SKU may appear on one line
of an order only (`uniqueItems` compares whole lines, not one property of
them; the OpenAPI document states the rule in words on `lines`). Schemathesis
therefore builds schema-valid orders that repeat a SKU (its coverage phase
fills `lines` with copies of the example line), and the service refuses them
with 422, as documented.

Instead of switching `positive_data_acceptance` off for `POST /orders`, the
hook below drops exactly those refusals: a 422 whose every error is on the
SKU of a line that repeats an earlier line's SKU in the request sent. Any
other refusal of a schema-valid order, also one that names a repeated SKU
among other errors, still fails the run; Schemathesis counts the dropped
ones in its summary.

The second rule no schema can state: the lists ordered by text keys
(invoicing's `GET /balances`, shipping's `GET /pick-list`) take as `cursor`
only a `next_cursor` an earlier page handed out. The document gives its form
(hex digits, `pagination::TextCursor`) and says it is opaque; a value of that
form that no page handed out is refused with 400, as documented. The hook
drops exactly those refusals: a 400 whose detail is the cursor's, for a
request whose other values the service took (any other complaint fails).
"""

import re

import schemathesis

# The field of an error about a line's SKU, as the service names it.
SKU_FIELD = re.compile(r"lines\[(\d+)\]\.sku")


@schemathesis.hook.apply_to(method="POST", path="/orders")
def filter_failure(context, failure, case, response):
    """Keep every failure but a refused order whose only fault is a repeated SKU."""
    if "positive_data_acceptance" not in failure.checks:
        return True
    return not refused_only_for_repeated_skus(case.body, response)


def refused_only_for_repeated_skus(body, response):
    """Whether the answer is a 422 naming only lines that repeat an earlier SKU."""
    if response.status_code != 422:
        return False
    repeated = repeated_sku_lines(body)
    try:
        errors = response.json().get("errors")
    except (ValueError, AttributeError):
        return False
    if not repeated or not isinstance(errors, list) or not errors:
        return False
    for error in errors:
        field = error.get("field") if isinstance(error, dict) else None
        line = SKU_FIELD.fullmatch(field) if isinstance(field, str) else None
        if line is None or int(line.group(1)) not in repeated:
            return False
    return True


def repeated_sku_lines(body):
    """The indexes of the lines whose SKU an earlier line of the order has."""
    lines = body.get("lines") if isinstance(body, dict) else None
    if not isinstance(lines, list):
        return set()
    seen = set()
    repeated = set()
    for index, line in enumerate(lines):
        sku = line.get("sku") if isinstance(line, dict) else None
        if not isinstance(sku, str):
            continue
        if sku in seen:
            repeated.add(index)
        seen.add(sku)
    return repeated


# The detail of the 400 for a cursor no page handed out (platform::pagination).
UNISSUED_CURSOR = "cursor: must be a `next_cursor` value from a previous page"


def refused_only_for_an_unissued_cursor(query, response):
    """Whether the answer is the 400 of a non-empty cursor no page handed out."""
    if response.status_code != 400 or not isinstance(query, dict) or not query.get("cursor"):
        return False
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return False
    return detail == UNISSUED_CURSOR


def opaque_cursor_filter():
    """A `filter_failure` hook for a list with an opaque text cursor."""

    def filter_failure(context, failure, case, response):
        """Keep every failure but a refused page whose only fault is an unissued cursor."""
        if "positive_data_acceptance" not in failure.checks:
            return True
        return not refused_only_for_an_unissued_cursor(case.query, response)

    return filter_failure


for _path in ("/balances", "/pick-list"):
    schemathesis.hook.apply_to(method="GET", path=_path)(opaque_cursor_filter())
