"""Every example the API's OpenAPI document shows is one the API accepts.

"Try it out" in /docs sends the examples as they are: a request body's example must pass
the validator that route really uses (POST /score: the stream's ``TransactionValidator``),
and every other example must match the schema it sits beside. That /score's example also
scores is checked against the real platform in tests/integration/test_api_score.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from fraudstream.api import schemas
from fraudstream.api.app import create_app
from fraudstream.schema import Transaction
from fraudstream.settings import load_settings
from fraudstream.validation import TransactionValidator

DOC = "urn:fraudstream:openapi"


@pytest.fixture(scope="module")
def openapi(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FRAUDSTREAM_HOME", str(tmp_path_factory.mktemp("home")))
        doc: dict[str, Any] = create_app(load_settings()).openapi()
    return doc


def _examples(node: Any, pointer: str = "") -> Iterator[tuple[str, str, Any]]:
    """(pointer of the node holding it, keyword, example) for every example in the document."""
    if isinstance(node, dict):
        if "example" in node:
            yield pointer, "example", node["example"]
        if isinstance(node.get("examples"), list):
            for example in node["examples"]:
                yield pointer, "examples", example
        for key, value in node.items():
            escaped = str(key).replace("~", "~0").replace("/", "~1")
            yield from _examples(value, f"{pointer}/{escaped}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _examples(value, f"{pointer}/{i}")


def _resolve(doc: dict[str, Any], pointer: str) -> Any:
    node: Any = doc
    for part in pointer.lstrip("/").split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _schema_errors(doc: dict[str, Any], schema_pointer: str, example: Any) -> list[str]:
    """The example checked against the schema at ``schema_pointer``, references resolved."""
    registry: Registry[Any] = Registry().with_resource(
        DOC, Resource.from_contents(doc, default_specification=DRAFT202012)
    )
    validator = Draft202012Validator({"$ref": f"{DOC}#{schema_pointer}"}, registry=registry)
    return [error.message for error in validator.iter_errors(example)]


def _a_transaction(example: Any) -> None:
    parsed = TransactionValidator().validate(orjson.dumps(example), datetime.now(UTC))
    assert isinstance(parsed, Transaction), parsed


# Request bodies a route reads itself (no body model FastAPI would check): the route's validator.
BODY_VALIDATORS = {"/paths/~1score/post/requestBody/content/application~1json": _a_transaction}


def test_every_example_in_the_openapi_document_is_valid(openapi: dict[str, Any]) -> None:
    checked: list[str] = []
    for pointer, keyword, example in _examples(openapi):
        holder = _resolve(openapi, pointer)
        where = f"{pointer} ({keyword})"
        if keyword == "examples" or "schema" not in holder:
            if "/content/application~1problem+json" in pointer:
                # A problem response: RFC 9457 fields, its status the response's code.
                code = pointer.split("/responses/")[1].split("/")[0]
                assert set(example) >= {"type", "title", "status", "detail"}, where
                assert str(example["status"]) == code, where
            else:
                # A JSON Schema keyword: the example must satisfy the schema holding it.
                assert _schema_errors(openapi, pointer, example) == [], where
        else:
            assert _schema_errors(openapi, f"{pointer}/schema", example) == [], where
        if "/requestBody/" in pointer:
            assert pointer in BODY_VALIDATORS, f"{where}: which validator does the route use?"
            BODY_VALIDATORS[pointer](example)
        if pointer.startswith("/components/schemas/") and pointer.count("/") == 3:
            # A whole request or response model: its pydantic class accepts it too.
            model = getattr(schemas, pointer.rsplit("/", 1)[1])
            model.model_validate(example)
        checked.append(where)
    # The walk found the examples that matter (it cannot pass by finding none).
    assert "/paths/~1score/post/requestBody/content/application~1json (example)" in checked
    assert "/components/schemas/VerdictRequest (examples)" in checked
    assert len(checked) >= 15


def test_a_rejected_example_would_be_caught(openapi: dict[str, Any]) -> None:
    """The walk's checks fail on a wrong example: the schema check and the stream's validator."""
    pointer = "/components/schemas/ScoreResponse/properties/score"
    assert _schema_errors(openapi, pointer, 1.5) != []
    bad = {
        **openapi["paths"]["/score"]["post"]["requestBody"]["content"]["application/json"][
            "example"
        ],
        "channel": "online",
    }
    with pytest.raises(AssertionError, match="channel"):
        _a_transaction(bad)
