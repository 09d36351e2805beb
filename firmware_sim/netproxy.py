"""A TCP proxy process for network faults: `python -m firmware_sim.netproxy --listen PORT --to HOST:PORT`.

Commands, one per line on stdin, each answered by one JSON line on stdout:
    cut        close every open connection and accept-then-close new ones (the devices' network is gone)
    restore    accept and forward again
    delay MS   hold every chunk of bytes, both directions, for MS milliseconds (order kept); 0 turns it off
    quit       stop
It is its own process so that forwarding thousands of messages a second does not take the simulator's
interpreter lock.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from collections.abc import Callable


class _Proxy:
    def __init__(self, to_host: str, to_port: int) -> None:
        self.to = (to_host, to_port)
        self.cut = False
        self.delay_s = 0.0
        self.writers: set[asyncio.StreamWriter] = set()
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.to)
        except OSError:
            writer.close()
            return
        self.connections += 1
        self.writers |= {writer, up_writer}
        try:
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        except asyncio.CancelledError:
            pass  # the proxy is shutting down
        finally:
            for w in (writer, up_writer):
                self.writers.discard(w)
                w.close()

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        sender = asyncio.create_task(self._send(queue, dst))
        try:
            while data := await src.read(65536):
                await queue.put((time.monotonic() + self.delay_s, data))
        except (ConnectionError, OSError):
            pass
        finally:
            await queue.put((0.0, b""))
            await sender
            dst.close()

    async def _send(self, queue: asyncio.Queue[tuple[float, bytes]], dst: asyncio.StreamWriter) -> None:
        while True:
            due, data = await queue.get()
            if not data:
                return
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                dst.write(data)
                await dst.drain()
            except (ConnectionError, OSError):
                return

    def command(self, line: str) -> dict[str, object]:
        parts = line.split()
        if not parts:
            return {"error": "empty command"}
        if parts[0] == "cut":
            self.cut = True
            for w in list(self.writers):
                w.close()
            return {"cut": True}
        if parts[0] == "restore":
            self.cut = False
            return {"cut": False}
        if parts[0] == "delay" and len(parts) == 2:
            self.delay_s = max(0.0, float(parts[1]) / 1000.0)
            return {"delay_ms": self.delay_s * 1000.0}
        return {"error": f"unknown command {line!r}; allowed: cut, restore, delay MS, quit"}


async def _main(listen: int, to_host: str, to_port: int) -> None:
    proxy = _Proxy(to_host, to_port)
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", listen)

    def reply(msg: dict[str, object]) -> None:
        print(json.dumps(msg), flush=True)

    def read_stdin() -> None:
        for line in sys.stdin:
            if line.strip() == "quit":
                break
            future = asyncio.run_coroutine_threadsafe(_run(proxy.command, line.strip()), loop)
            reply(future.result())
        loop.call_soon_threadsafe(done.set)

    reply({"ready": True, "port": listen})
    threading.Thread(target=read_stdin, daemon=True).start()
    await done.wait()
    server.close()
    for w in list(proxy.writers):
        w.close()
    reply({"done": True})


async def _run(fn: Callable[[str], dict[str, object]], arg: str) -> dict[str, object]:
    return fn(arg)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="TCP proxy that can cut or delay connections (network faults)")
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--to", required=True, help="HOST:PORT")
    ns = ap.parse_args(argv)
    host, _, port = ns.to.rpartition(":")
    asyncio.run(_main(ns.listen, host or "127.0.0.1", int(port)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
