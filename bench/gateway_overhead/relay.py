"""A bare aiohttp relay: the floor a Python proxy can reach (no auth, no accounting, nothing but relaying).

    python bench/gateway_overhead/relay.py --port 9000 --upstream http://127.0.0.1:8000

Every request is forwarded to the same path on the upstream over a pooled
keep-alive client; event streams are relayed chunk by chunk as they arrive.
"""

from __future__ import annotations

import argparse

import aiohttp
from aiohttp import web


def make_app(upstream: str) -> web.Application:
    app = web.Application()
    session_key = web.AppKey("session", aiohttp.ClientSession)

    async def start(app: web.Application) -> None:
        app[session_key] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000))

    async def stop(app: web.Application) -> None:
        await app[session_key].close()

    async def relay(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
        async with app[session_key].post(upstream + request.path, data=body, headers=headers) as upstream_response:
            content_type = upstream_response.headers.get("Content-Type", "application/octet-stream")
            if content_type.startswith("text/event-stream"):
                response = web.StreamResponse(status=upstream_response.status, headers={"Content-Type": content_type})
                await response.prepare(request)
                async for piece in upstream_response.content.iter_any():
                    await response.write(piece)
                await response.write_eof()
                return response
            data = await upstream_response.read()
            return web.Response(status=upstream_response.status, body=data, headers={"Content-Type": content_type})

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_post("/{tail:.*}", relay)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="upstream origin, e.g. http://127.0.0.1:8000")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # the floor without uvloop is still a floor
        pass
    web.run_app(make_app(args.upstream.rstrip("/")), host="127.0.0.1", port=args.port, access_log=None,
                print=lambda *_: print(f"relay: serving on http://127.0.0.1:{args.port}", flush=True))


if __name__ == "__main__":
    main()
