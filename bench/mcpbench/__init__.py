"""mcpbench: the benchmark harness (gateway vs direct connection vs peers).

Modules, one job each:

* `stats`    percentiles, medians and ratios (pure)
* `procfs`   CPU time and RSS of one process (CPU of a process tree, of the machine) from /proc
* `wire`     JSON-RPC message building and SSE parsing (pure)
* `http11`   a minimal HTTP/1.1 client connection on asyncio sockets
* `clients`  raw MCP sessions: stdio pipes, Streamable HTTP, legacy SSE
* `sdkclient` the `mcp` SDK's own client as a second driver (ClientSession over stdio, HTTP, SSE)
* `procs`    starting and stopping the processes under test
* `peers`    the peers' own venvs, created with pinned versions
* `targets`  what each target is and how it is launched
* `measure`  the figures: latency, throughput, big result, listing, cold start, RSS, CPU
* `slowload` 64 sessions over 5 backends, 2 of them slow: the fast ones' p99 alone and beside them
* `nginx`    nginx without installing it (the distro's package, extracted under .cache/) and its config
* `scaleout` `--stateless` replicas behind nginx: calls, failures, throughput, round robin, CPU
* `goals`    the targets and their pass/fail checks (pure)
* `report`   markdown table and JSON (pure)
* `cli`      flags and the order of a run
"""
