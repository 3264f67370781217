"""mcpbench: the benchmark harness of issue 6 (gateway vs direct connection vs peers).

Modules, one job each:

* `stats`    percentiles, medians and ratios (pure)
* `procfs`   CPU time and RSS of one process from /proc
* `wire`     JSON-RPC message building and SSE parsing (pure)
* `http11`   a minimal HTTP/1.1 client connection over anyio
* `clients`  raw MCP sessions: stdio pipes, Streamable HTTP, legacy SSE
* `procs`    starting and stopping the processes under test
* `peers`    the peers' own venvs, created with pinned versions
* `targets`  what each target is and how it is launched
* `measure`  the figures: latency, throughput, big result, listing, cold start, RSS, CPU
* `goals`    the issue's targets and their pass/fail checks (pure)
* `report`   markdown table and JSON (pure)
* `cli`      flags and the order of a run
"""
