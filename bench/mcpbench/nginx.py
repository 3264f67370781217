"""nginx in front of gateway replicas, without installing it: the distro's package, extracted under `.cache/`.

`ensure_nginx()` finds a binary (`MCPGW_NGINX`, the extracted one, or one on PATH) or fetches it:
`apt-get download nginx` into `.cache/bench/nginx/debs` and `dpkg -x` into `.cache/bench/nginx/root`.
Neither needs root. When the machine has no package lists (a fresh machine, where `apt-get update`
needs root), apt refreshes private lists under `.cache/bench/nginx/apt` instead, without locking the
system's. Libraries the binary cannot find are fetched and extracted beside it the same way.

`render_config()` writes a config with every path under the run's own prefix (pid, temp files), the
error log to stderr, and the replicas in one round-robin `upstream` with keep-alive connections;
`proxy_buffering off` so SSE responses stream. `.ci/run` calls `python bench/run.py --ensure-nginx`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from mcpbench import peers
from mcpbench.procs import LOCALHOST, ServerProcess, started

NGINX_DIR = peers.CACHE_DIR / "nginx"
ROOT = NGINX_DIR / "root"
CACHED_BINARY = ROOT / "usr" / "sbin" / "nginx"
ENV_VAR = "MCPGW_NGINX"
PACKAGE = "nginx"  # the binary only: nginx-common holds /etc/nginx and init scripts, which a run never reads


class NginxUnavailableError(RuntimeError):
    """No nginx binary here, and fetching the distro's package failed."""


def find_nginx() -> Path | None:
    """`MCPGW_NGINX` if set, else the binary extracted under `.cache/`, else an installed nginx; None if none runs."""
    configured = os.environ.get(ENV_VAR)
    candidates = [Path(configured)] if configured else [CACHED_BINARY]
    if not configured:
        found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").is_file() else None)
        candidates += [Path(found)] if found else []
    for candidate in candidates:
        if os.access(candidate, os.X_OK) and _runs(candidate):
            return candidate
    return None


def _lib_dirs(binary: Path) -> list[Path]:
    """Library folders extracted beside an extracted binary (`<root>/usr/sbin/nginx`), if any."""
    root = binary.resolve().parent.parent.parent
    if root == Path(root.anchor):
        return []  # an installed nginx (/usr/sbin/nginx): the system's own libraries
    return [d for d in sorted(root.glob("lib/*-linux-gnu*")) + sorted(root.glob("usr/lib/*-linux-gnu*")) if d.is_dir()]


def nginx_env(binary: Path) -> dict[str, str]:
    """Environment additions the binary needs: LD_LIBRARY_PATH when libraries were extracted beside it."""
    dirs = _lib_dirs(binary)
    if not dirs:
        return {}
    existing = os.environ.get("LD_LIBRARY_PATH")
    return {"LD_LIBRARY_PATH": os.pathsep.join([*map(str, dirs), *([existing] if existing else [])])}


def _runs(binary: Path) -> bool:
    try:
        done = subprocess.run(
            [str(binary), "-v"], capture_output=True, env={**os.environ, **nginx_env(binary)}, timeout=30, check=False
        )
    except OSError:
        return False
    return done.returncode == 0


def _apt_options(private: bool) -> list[str]:
    if not private:
        return []
    state = NGINX_DIR / "apt"
    (state / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (state / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    return [
        "-o",
        f"Dir::State::Lists={state / 'lists'}",
        "-o",
        f"Dir::Cache={state / 'cache'}",
        "-o",
        "Debug::NoLocking=1",
    ]


def _apt(args: Sequence[str], private: bool, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["apt-get", "-q", *_apt_options(private), *args], cwd=cwd, capture_output=True, text=True, check=False
    )


def _download(packages: Sequence[str], debs: Path, *, private_lists_fresh: bool = False) -> bool:
    """`apt-get download` with the machine's lists, else with private lists refreshed under `.cache/`.

    True when the private lists were used.
    """
    if not private_lists_fresh:
        if _apt(["download", *packages], private=False, cwd=debs).returncode == 0:
            return False
        print("apt-get download failed with the system's package lists; refreshing private ones ...", file=sys.stderr)
        updated = _apt(["update"], private=True)
        if updated.returncode != 0:
            raise NginxUnavailableError(f"apt-get update (private lists) failed:\n{updated.stderr[-2000:]}")
    done = _apt(["download", *packages], private=True, cwd=debs)
    if done.returncode != 0:
        raise NginxUnavailableError(f"apt-get download {' '.join(packages)} failed:\n{done.stderr[-2000:]}")
    return True


def _extract(debs: Path) -> None:
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg", "-x", str(deb), str(ROOT)], check=True)


def _missing_libraries(binary: Path) -> list[str]:
    done = subprocess.run(
        ["ldd", str(binary)], capture_output=True, text=True, env={**os.environ, **nginx_env(binary)}, check=False
    )
    return [line.split()[0] for line in done.stdout.splitlines() if "not found" in line]


def _library_packages(private: bool) -> list[str]:
    """nginx's library dependencies (`libssl3`, `libpcre2-8-0`, ...), from apt's own metadata."""
    command = ["apt-cache", *_apt_options(private), "depends", PACKAGE]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    names = [line.split(":", 1)[1].strip() for line in done.stdout.splitlines() if line.strip().startswith("Depends:")]
    return sorted({n for n in names if n.startswith(("lib", "zlib")) and n != "libc6"})


def fetch_nginx() -> Path:
    """Download and extract the distro's nginx package into `.cache/bench/nginx`; the binary's path."""
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise NginxUnavailableError("fetching nginx needs apt-get and dpkg (a Debian or Ubuntu machine)")
    debs = NGINX_DIR / "debs"
    shutil.rmtree(debs, ignore_errors=True)
    shutil.rmtree(ROOT, ignore_errors=True)
    debs.mkdir(parents=True)
    private = _download([PACKAGE], debs)
    _extract(debs)
    missing = _missing_libraries(CACHED_BINARY)
    if missing:
        print(f"nginx needs {', '.join(missing)}: extracting its library packages too", file=sys.stderr)
        _download(_library_packages(private), debs, private_lists_fresh=private)
        _extract(debs)
        still = _missing_libraries(CACHED_BINARY)
        if still:
            raise NginxUnavailableError(f"{CACHED_BINARY} still misses {', '.join(still)}")
    if not _runs(CACHED_BINARY):
        raise NginxUnavailableError(f"{CACHED_BINARY} was extracted but `nginx -v` fails")
    return CACHED_BINARY


def ensure_nginx() -> Path:
    """A working nginx binary: found, or fetched into `.cache/bench/nginx` (quick when already there)."""
    return find_nginx() or fetch_nginx()


def render_config(port: int, upstreams: Sequence[int], *, as_root: bool = False) -> str:
    """An nginx.conf listening on loopback `port`, round-robin over the replicas on `upstreams` (pure).

    Paths are relative to the `-p` prefix. One worker process: on a 2-core machine the replicas and
    their backends need the cores. When the master runs as root, the worker keeps the same user.
    """
    servers = "\n".join(f"    server {LOCALHOST}:{p} max_fails=0;" for p in upstreams)
    user = "user root;\n" if as_root else ""
    return f"""\
# Written by mcpbench (bench/mcpbench/nginx.py): loopback round-robin in front of mcpgw --stateless replicas.
{user}daemon off;
worker_processes 1;
pid nginx.pid;
error_log stderr warn;
events {{
  worker_connections 1024;
}}
http {{
  access_log off;
  client_body_temp_path tmp/body;
  proxy_temp_path tmp/proxy;
  fastcgi_temp_path tmp/fastcgi;
  uwsgi_temp_path tmp/uwsgi;
  scgi_temp_path tmp/scgi;
  upstream mcpgw {{
{servers}
    keepalive 32;
  }}
  server {{
    listen {LOCALHOST}:{port};
    location / {{
      proxy_pass http://mcpgw;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 1h;
    }}
  }}
}}
"""


@contextmanager
def running_nginx(binary: Path, prefix: Path, port: int, upstreams: Sequence[int]) -> Iterator[ServerProcess]:
    """Write the config under `prefix` and run nginx in the foreground until the block ends (then its group is stopped).

    The caller waits for `port` to accept connections (`procs.wait_listening`).
    """
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(render_config(port, upstreams, as_root=os.geteuid() == 0))
    command = [str(binary), "-p", f"{prefix}/", "-c", str(conf), "-e", "stderr"]
    with started(command, prefix / "nginx.log", env=nginx_env(binary)) as server:
        yield server


def nginx_version(binary: Path) -> str:
    """`nginx/1.22.1`, from `nginx -v` (which prints to stderr)."""
    done = subprocess.run(
        [str(binary), "-v"], capture_output=True, text=True, env={**os.environ, **nginx_env(binary)}, check=False
    )
    return done.stderr.strip().removeprefix("nginx version: ") or "nginx (unknown version)"
