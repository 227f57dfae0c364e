"""The baselines: the least a Python web app can cost here, served by uvicorn like the services.

``python -m bench.baselines fastapi|starlette PORT`` serves one JSON route, ``GET /rooms``, with a
body like room's list, so the difference to room is what the project adds (middleware,
validation, logging, metrics, the database).
"""

from __future__ import annotations

import sys
from typing import Any

BODY: dict[str, Any] = {
    "items": [
        {
            "room_id": f"r10{i}",
            "name": "Garden Single",
            "description": "A quiet room.",
            "capacity": 1,
            "nightly_rate": 80,
        }
        for i in range(1, 6)
    ]
}


def fastapi_app() -> Any:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/rooms")
    def rooms() -> dict[str, Any]:
        return BODY

    return app


def starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def rooms(request: Request) -> JSONResponse:
        return JSONResponse(BODY)

    return Starlette(routes=[Route("/rooms", rooms)])


def main(argv: list[str]) -> None:
    import uvicorn

    kind, port = argv[0], int(argv[1])
    app = {"fastapi": fastapi_app, "starlette": starlette_app}[kind]()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main(sys.argv[1:])
