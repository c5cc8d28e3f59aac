"""Request bodies of `textgen serve`, as pydantic models: JSON types, ranges, and one-line error messages.

Strict types (`true` is not an integer, `3.0` is not a beam), finite numbers only, unknown fields refused,
null meaning "the default". Sizes that depend on the server's own limits (sources per request, characters
per text, /sample length) are checked after, by `check_sizes`, and give 413.
"""

from __future__ import annotations

from typing import Annotated, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from textgen.decode.settings import OPTIONS
from textgen.serve.microbatch import Limits, error

MAX_BEAM = 64  # a request's beam and n-best: the server's own cap, below what the decoders accept
Texts = Annotated[list[str], Field(min_length=1)]


def _within(option: str, cap: int | None = None):
    """The pydantic bounds of a decoding option: its range in decode/settings.OPTIONS (the one home of every
    option's range, which the CLI and the API check too), lowered to `cap` where the server wants less. Ranges
    have a low bound (exclusive for floats only) and an inclusive high one, if any: the forms `_bounds` words."""
    kind, allowed = OPTIONS[option]
    if allowed.low is None or allowed.below or (allowed.above and kind is int):
        raise ValueError(f"decode option {option}'s range {allowed} has no request-schema form")
    highs = [h for h in (allowed.high, cap) if h is not None]
    bounds = {"gt" if allowed.above else "ge": kind(allowed.low)}
    return Field(**bounds, **({"le": kind(min(highs))} if highs else {}))


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _null_is_default(cls, data):
        return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else data


class TranslateBody(_Body):
    sources: Texts
    beam: Optional[Annotated[int, _within("beam", MAX_BEAM)]] = None  # None: the recipe's
    nbest: Annotated[int, _within("nbest", MAX_BEAM)] = 1
    lenpen: Optional[Annotated[float, _within("lenpen")]] = None  # None: the recipe's
    sample: bool = False
    temperature: Optional[Annotated[float, _within("temperature")]] = None  # None: the recipe's
    seed: Optional[Annotated[int, _within("seed")]] = None


class SampleBody(_Body):
    prime: str = ""
    length: Annotated[int, _within("length")] = 100
    temperature: Annotated[float, _within("temperature")] = 1.0
    top_k: Annotated[int, _within("top_k", 2**31 - 1)] = 0  # torch.topk takes a 32-bit k
    top_p: Annotated[float, _within("top_p")] = 1.0
    seed: Optional[Annotated[int, _within("seed")]] = None


class ScorePairsBody(_Body):
    sources: Texts
    targets: Texts


class ScoreTextsBody(_Body):
    texts: Texts


_JSON_TYPES = {
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "a boolean",
    "string_type": "a string",
    "list_type": "an array",
}


def _json_type(value) -> str:
    for kind, name in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"), (list, "array")):
        if isinstance(value, kind):
            return name
    return "object" if isinstance(value, dict) else "null"


def _where(loc: tuple) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f"'{part}'" for part in loc)


def _bounds(schema: type[_Body], name: str) -> str:
    prop = schema.model_json_schema()["properties"][name]
    rules = next((p for p in prop.get("anyOf", [prop]) if p.get("type") != "null"), prop)  # Optional[...]
    if "exclusiveMinimum" in rules:
        return f"in ({rules['exclusiveMinimum']}, {rules['maximum']}]"
    return f"between {rules['minimum']} and {rules['maximum']}" if "maximum" in rules else f">= {rules['minimum']}"


def _message(schema: type[_Body], route: str, err: dict) -> str:
    kind, loc, value = err["type"], err["loc"], err.get("input")
    where = _where(loc)
    if kind == "json_invalid":
        return f"malformed JSON: {err['ctx']['error']}"
    if kind == "model_type":
        return f"the body must be a JSON object, got {_json_type(value)}"
    if kind == "missing":
        return f"missing field {where}"
    if kind == "extra_forbidden":
        return f"unknown field {where}: {route} takes {', '.join(schema.model_fields)}"
    if kind == "too_short":
        return f"{where} is empty: give at least one string"
    if kind in _JSON_TYPES:
        return f"{where} must be {_JSON_TYPES[kind]}, got {_json_type(value)}"
    if kind == "finite_number":
        return f"{where} must be a finite number, got {value}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return f"{where} must be {_bounds(schema, loc[0])}, got {value}"
    return f"{where or 'the body'}: {err['msg']}"


def parse(schema: type[_Body], raw: bytes, route: str) -> _Body:
    """The request body `raw` as `schema`, or a 400 naming the first thing wrong with it."""
    try:
        return schema.model_validate_json(raw)
    except ValidationError as exc:
        raise error(400, _message(schema, route, exc.errors(include_url=False)[0])) from None


def check_sizes(body: _Body, limits: Limits) -> None:
    """The server's own limits on sizes: sources (targets, texts) per request, characters per text, sample length."""
    for name in ("sources", "targets", "texts"):
        texts = getattr(body, name, None) or []
        if len(texts) > limits.max_sources:
            raise error(413, f"'{name}' has {len(texts)} items; the limit is {limits.max_sources} per request")
        for i, text in enumerate(texts):
            if len(text) > limits.max_input_chars:
                raise error(413, f"'{name}'[{i}] has {len(text)} characters; the limit is {limits.max_input_chars}")
    prime = getattr(body, "prime", "")
    if len(prime) > limits.max_input_chars:
        raise error(413, f"'prime' has {len(prime)} characters; the limit is {limits.max_input_chars}")
    length = getattr(body, "length", 0)
    if length > limits.max_length:
        raise error(413, f"'length' must be between 0 and {limits.max_length}, got {length}")
