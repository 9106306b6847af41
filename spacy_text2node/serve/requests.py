"""Checking a /link request body, with a message for each mistake that says what to send instead."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

from ..bulk.readers import check_text

SHAPES = (
    'Send JSON: {"text": "..."} (optionally with "id") for one text, or {"texts": ["...", ...]} or '
    '{"records": [{"id": "...", "text": "..."}, ...]} for a batch.'
)
FIELDS = ("text", "id", "texts", "records", "top_k", "render")


class RequestError(Exception):
    """A request the service refuses: an HTTP status and a message saying what to send instead.

    status (int): the HTTP status (4xx; 503 for a timeout).
    message (str): the message, returned as `detail`.
    """

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class LinkRequestBody:
    """A checked /link request.

    items (List[Tuple[str, str]]): (text, id) pairs, in order.
    single (bool): one `text` (answer one record) rather than a batch (answer {records}).
    top_k (Optional[int]): candidates per span asked for, None for the server's default.
    render (bool): add displaCy HTML to each record.
    """

    items: List[Tuple[str, str]]
    single: bool
    top_k: Optional[int]
    render: bool


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__
    )


def _text(value: Any, where: str, max_chars: int, example: str) -> str:
    if value is not None and not isinstance(value, str):
        raise RequestError(422, f"{where} must be a string, not {_type_name(value)}. Send {example}.")
    text, reason = check_text(value, max_chars)
    if text is not None:
        return text
    if "over the limit" in (reason or ""):
        raise RequestError(
            413,
            f"{where}: {reason}. Send texts of at most {max_chars:,} characters (split longer notes), "
            f"or start the server with a larger --max-chars.",
        )
    raise RequestError(422, f"{where}: {reason}. Send {example} with the note's text.")


def _id(value: Any, where: str, default: str) -> str:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RequestError(422, f'{where} must be a string or an integer, not {_type_name(value)}. Send e.g. "note-1".')
    return str(value)


def parse_body(raw: bytes) -> Any:
    """Parse a request body as JSON.

    raw (bytes): the body.
    RETURNS (Any): the parsed JSON value.
    """
    if not raw.strip():
        raise RequestError(400, f"The request body is empty. {SHAPES}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise RequestError(400, f"The request body is not UTF-8 (byte {e.start}). {SHAPES}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        where = f"{e.msg} at line {e.lineno} column {e.colno}"
        raise RequestError(400, f"The request body is not valid JSON ({where}). {SHAPES}") from None


def parse_link_request(body: Any, *, max_chars: int, max_batch: int) -> LinkRequestBody:
    """Check a parsed /link body against the shapes and limits.

    body (Any): the parsed JSON body.
    max_chars (int): the longest text accepted.
    max_batch (int): the most texts in one request.
    RETURNS (LinkRequestBody): the texts with their ids and the options.
    """
    if not isinstance(body, dict):
        raise RequestError(422, f"The request body is {_type_name(body)}, not a JSON object. {SHAPES}")
    unknown = [k for k in body if k not in FIELDS]
    if unknown:
        raise RequestError(422, f"Unknown field {unknown[0]!r}: the fields are {', '.join(FIELDS)}. {SHAPES}")
    given = [k for k in ("text", "texts", "records") if k in body]
    if len(given) != 1:
        what = "none of" if not given else "more than one of"
        raise RequestError(422, f'The body has {what} "text", "texts" and "records": give exactly one. {SHAPES}')
    top_k = body.get("top_k")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise RequestError(
            422,
            f'"top_k" must be an integer of at least 1, not {json.dumps(top_k)}. '
            f'Send e.g. "top_k": 5, or leave it out for the server\'s --top-k.',
        )
    render = body.get("render", False)
    if not isinstance(render, bool):
        raise RequestError(
            422, f'"render" must be true or false, not {_type_name(render)}. Send "render": true, or leave it out.'
        )
    key = given[0]
    if key == "text":
        text = _text(body["text"], '"text"', max_chars, '{"text": "..."}')
        return LinkRequestBody([(text, _id(body.get("id"), '"id"', "0"))], True, top_k, render)
    if "id" in body:
        raise RequestError(
            422,
            '"id" goes with "text"; in a batch, send each id in "records": '
            '{"records": [{"id": "...", "text": "..."}, ...]}.',
        )
    batch = body[key]
    example = '{"texts": ["...", "..."]}' if key == "texts" else '{"records": [{"id": "...", "text": "..."}]}'
    if not isinstance(batch, list):
        raise RequestError(422, f'"{key}" must be an array, not {_type_name(batch)}. Send {example}.')
    if not batch:
        raise RequestError(422, f'"{key}" is empty: send at least one text, as in {example}.')
    if len(batch) > max_batch:
        raise RequestError(
            413,
            f"The batch has {len(batch):,} texts, over the limit of {max_batch:,} (--max-batch): "
            f"send at most {max_batch:,} texts per request.",
        )
    items = []
    for i, entry in enumerate(batch):
        where = f'"{key}"[{i}]'
        if key == "texts":
            items.append((_text(entry, where, max_chars, example), str(i)))
            continue
        if not isinstance(entry, dict):
            raise RequestError(422, f"{where} must be an object, not {_type_name(entry)}. Send {example}.")
        extra = [k for k in entry if k not in ("id", "text")]
        if extra:
            raise RequestError(422, f'{where} has an unknown field {extra[0]!r}. Send {example}: "id" and "text" only.')
        items.append(
            (_text(entry.get("text"), f"{where}.text", max_chars, example), _id(entry.get("id"), f"{where}.id", str(i)))
        )
    return LinkRequestBody(items, False, top_k, render)
