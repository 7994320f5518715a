"""The OpenAPI document itself: every response of every operation declares a typed JSON
schema, the registration operations the Bearer scheme, the deprecated listing its Warning."""

from __future__ import annotations

from openapi_support import JSONDict, operations

# --- every response declares a typed schema --------------------------------------------------


def assert_typed(schema: JSONDict, components: JSONDict, where: str) -> None:
    """``schema`` says what the JSON is, all the way down: no bare ``{}`` and no object
    without properties (a ``dict[str, int]``, typed values, is fine)."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        assert_typed(components[name], components, f"{where} -> {name}")
    elif "anyOf" in schema:
        for option in schema["anyOf"]:
            assert_typed(option, components, where)
    elif "const" in schema or "enum" in schema:
        pass
    elif schema.get("type") == "array":
        assert_typed(schema.get("items", {}), components, f"{where}[]")
    elif schema.get("type") == "object":
        properties = schema.get("properties")
        values = schema.get("additionalProperties")
        assert properties or isinstance(values, dict), f"{where}: an object without properties"
        for key, value in (properties or {}).items():
            assert_typed(value, components, f"{where}.{key}")
        if isinstance(values, dict):
            assert_typed(values, components, f"{where}.*")
    else:
        assert schema.get("type") in {"string", "integer", "number", "boolean", "null"}, (
            f"{where}: untyped schema {schema}"
        )


def test_every_response_of_every_operation_declares_a_typed_json_schema(
    document: JSONDict,
) -> None:
    components = document["components"]["schemas"]
    for path, method, operation in operations(document):
        assert operation["responses"], f"{method} {path} declares no response"
        for code, response in operation["responses"].items():
            where = f"{method.upper()} {path} {code}"
            assert set(response.get("content", {})) == {"application/json"}, where
            schema = response["content"]["application/json"]["schema"]
            assert_typed(schema, components, where)


def test_the_registration_operations_require_the_bearer_scheme(document: JSONDict) -> None:
    assert document["components"]["securitySchemes"] == {
        "RegistrationBearer": {"type": "http", "scheme": "bearer"}
    }
    secured = {path for path, _, operation in operations(document) if operation.get("security")}
    assert secured == {"/api/v1.0/director/registerOrigin", "/api/v1.0/director/registerCache"}
    for path in secured:
        assert document["paths"][path]["post"]["security"] == [{"RegistrationBearer": []}]


def test_the_deprecated_listing_documents_its_warning_header(document: JSONDict) -> None:
    answer = document["paths"]["/api/v1.0/director/listNamespaces"]["get"]["responses"]["299"]

    assert set(answer["headers"]) == {"Warning"}
    assert answer["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorOut"
    }
