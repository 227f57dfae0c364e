"""/docs describes the public API that is actually routed, and nothing internal."""

from __future__ import annotations

from gateway_service.domain.routes import ROUTES


async def test_openapi_lists_every_routed_endpoint_with_its_parameters(client):
    schema = (await client.get("/openapi.json")).json()
    paths = schema["paths"]

    for route in ROUTES:
        operation = paths[route.path][route.method.lower()]
        assert operation["summary"] == route.summary
        assert operation["tags"] == [route.upstream]
        assert bool(operation.get("security")) != route.public, route.path
    assert not [p for p in paths if p.startswith("/internal")]
    assert "/api/v1/dashboard" in paths

    suspend = paths["/api/v1/admin/members/{member_id}/suspend"]["post"]
    assert {"name": "member_id", "in": "path", "required": True, "schema": {"type": "string"}} in suspend[
        "parameters"
    ]
    availability = paths["/api/v1/availability"]["get"]
    assert {p["name"] for p in availability["parameters"]} == {"room_id", "from", "to"}
    reserve = paths["/api/v1/reservations"]["post"]
    assert "Idempotency-Key" in {p["name"] for p in reserve["parameters"]}
    assert "room_id" in reserve["requestBody"]["content"]["application/json"]["example"]
    login = paths["/api/v1/auth/token"]["post"]["requestBody"]["content"]
    assert login["application/x-www-form-urlencoded"]["schema"]["required"] == ["username", "password"]
    dashboard = paths["/api/v1/dashboard"]["get"]["responses"]["200"]["content"]["application/json"]
    assert dashboard["schema"]["$ref"].endswith("/Dashboard")
    # "Authorize" in /docs logs in through auth's token endpoint.
    # (ServiceToken is there too: the gateway's own /admin/faults, for the ops caller.)
    scheme = schema["components"]["securitySchemes"]["UserBearer"]
    assert scheme["flows"]["password"]["tokenUrl"] == "/api/v1/auth/token"


async def test_docs_page_is_served(client):
    response = await client.get("/docs")

    assert response.status_code == 200
    assert "swagger" in response.text.lower()
