"""Render `gateway.py` and `requirements.txt` from the templates, one template per output file.

The compiler decides every value and its order here; the templates only lay
them out. Nothing rendered depends on time, hash seed or the machine.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

import jinja2
from mcpgw_runtime.cli import CORE_MARKER

from mcpgw import __version__
from mcpgw.config import Config
from mcpgw.embed import embed_runtime
from mcpgw.format import format_python
from mcpgw.names import Exposed
from mcpgw.pyliteral import pyliteral
from mcpgw.resources import template_dir
from mcpgw.snapshot import BackendOffer
from mcpgw.specs import backend_spec

RUNTIME_REQUIREMENTS = (
    "httptools==0.9.0",
    "mcp==2.3.0",
    "rich==15.0.0",
    "starlette==1.10.0",
    "uvicorn==0.54.0",
    "uvloop==0.23.0; sys_platform != 'win32'",
)
"""Exact pins the runtime is tested with; the gateway needs nothing else.

rich only draws the panel on a terminal; httptools and uvloop are what uvicorn picks
when present, and halve the HTTP hop's CPU (bench/README.md); without them it runs on h11
and asyncio's own loop."""


@dataclass(frozen=True)
class RenderInput:
    config: Config
    config_name: str
    config_dir_from_output: str
    offers: dict[str, BackendOffer]
    exposed: Exposed
    tool_pins: dict[str, str]
    prompt_pins: dict[str, str]


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["py"] = pyliteral
    env.filters["tuple"] = tuple
    return env


def _backend_literal(config: Config, name: str) -> str:
    """`BackendSpec(...)` with every field, so a new field needs no change here."""
    spec = backend_spec(config.backends[name])
    args = ", ".join(f"{f.name}={pyliteral(_plain(getattr(spec, f.name)))}" for f in fields(spec))
    return f"BackendSpec({args})"


def _plain(value: object) -> object:
    return dict(value) if isinstance(value, Mapping) else value


def render_gateway(inp: RenderInput) -> str:
    config, exposed = inp.config, inp.exposed
    gateway = config.gateway
    runtime = embed_runtime()
    enabled = [name for name, b in sorted(config.backends.items()) if b.enabled]
    text = (
        _environment()
        .get_template("gateway.py.jinja")
        .render(
            version=__version__,
            config_name=inp.config_name,
            gateway=gateway,
            imports=runtime.imports,
            runtime=runtime.body,
            core_imports=runtime.core_imports,
            core=runtime.core_body,
            core_marker=CORE_MARKER,
            backends=[_backend_literal(config, n) for n in enabled],
            exposed=exposed,
            tool_pins=inp.tool_pins,
            prompt_pins=inp.prompt_pins,
            config_dir=inp.config_dir_from_output,
            py=pyliteral,
        )
    )
    return format_python(text)


def render_requirements(inp: RenderInput) -> str:
    return (
        _environment()
        .get_template("requirements.txt.jinja")
        .render(version=__version__, config_name=inp.config_name, requirements=RUNTIME_REQUIREMENTS)
    )


def relative_dir(config_path: Path, output_dir: Path) -> str:
    """The config's folder as seen from the output folder, POSIX-style, for the embedded table."""
    rel = os.path.relpath(config_path.resolve().parent, output_dir.resolve())
    return Path(rel).as_posix()
