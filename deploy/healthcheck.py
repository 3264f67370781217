"""Health probe of a containerised gateway: exit 0 when its `/healthz` answers 200, else 1.

Used by the image's HEALTHCHECK and by the Kubernetes probes (deploy/kubernetes.yaml) as an exec
probe, because the gateway's guard covers `/healthz` too: the probe must send the bearer token, and an
`httpGet` probe cannot read it from a Secret. It connects to 127.0.0.1 (a Host the gateway always
accepts, whatever `allowed_hosts` says) on `MCPGW_PORT` (default 9000). Standard library only.

A degraded gateway (one backend down) still answers 200 and stays in rotation: its other backends
keep serving, and calls to the dead one get an MCP error naming it.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    port = os.environ.get("MCPGW_PORT", "9000")
    token = os.environ.get("MCPGW_TOKEN", "").strip()  # as the gateway reads it: a secret file's newline ignored
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"http://127.0.0.1:{port}/healthz", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
