"""The image's HEALTHCHECK: exit 0 when this container's ``/health/ready`` answers 200.

Standard library only (the slim image has no curl), and no import of the service itself, so a
probe every few seconds costs a few milliseconds. The port is the one the service reads
(``<SERVICE>_PORT``), else the image's default (``SERVICE_PORT``, the build argument ``PORT``).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

READY_PATH = "/health/ready"  # stack.services.READY_PATH; tests/deploy/test_compose.py checks


def main() -> int:
    service = os.environ.get("SERVICE", "")
    port = os.environ.get(f"{service.upper()}_PORT") or os.environ.get("SERVICE_PORT", "")
    url = f"http://127.0.0.1:{port}{READY_PATH}"
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            return 0 if response.status == 200 else 1
    except urllib.error.HTTPError as exc:  # 503: not ready; the body says which check failed
        print(f"{url}: {exc.code} {exc.read(400).decode(errors='replace')}", file=sys.stderr)
    except OSError as exc:
        print(f"{url}: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
