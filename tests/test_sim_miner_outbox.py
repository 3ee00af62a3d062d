"""The miner's lines reach the pool in the order it sent them, whether a line goes straight to
the socket (nothing waiting before it) or through the writer task (a backlog in the outbox, or
bytes the socket has not taken yet). Over a real loopback TCP connection."""

from __future__ import annotations

import asyncio

from asic_reservoir.simulator.miner import StratumMiner


async def _pair() -> tuple[asyncio.Server, asyncio.StreamReader, asyncio.StreamWriter]:
    """A loopback server and the miner side's stream; the server side's reader comes back."""
    accepted: asyncio.Future = asyncio.get_running_loop().create_future()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set_result((reader, writer))

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, client = await asyncio.open_connection("127.0.0.1", port)
    far_reader, _ = await accepted
    return server, far_reader, client


async def test_lines_keep_their_order_through_the_outbox_and_straight_to_the_socket():
    server, far, writer = await _pair()
    miner = StratumMiner(n_chips=1, url="stratum+tcp://127.0.0.1:1")
    miner._writer, miner._outbox = writer, asyncio.Queue(16)
    task = None
    try:
        miner._outbox.put_nowait("a\n")              # a backlog the writer task has not sent
        assert miner._queue("b\n") and miner._outbox.qsize() == 2      # behind it, not around it
        task = asyncio.create_task(miner._write_loop(writer))
        await asyncio.sleep(0)                       # the writer task sends the backlog
        assert miner._outbox.empty()
        assert miner._queue("c\n") and miner._outbox.empty()           # straight to the socket
        assert [await far.readline() for _ in range(3)] == [b"a\n", b"b\n", b"c\n"]
    finally:
        if task is not None:
            task.cancel()
        writer.close()
        server.close()


async def test_a_line_waits_for_bytes_the_socket_has_not_taken():
    server, far, writer = await _pair()
    miner = StratumMiner(n_chips=1, url="stratum+tcp://127.0.0.1:1")
    miner._writer, miner._outbox = writer, asyncio.Queue(16)
    try:
        bulk = b"x" * (1 << 16) + b"\n"
        while not writer.transport.get_write_buffer_size():   # the peer reads nothing yet
            writer.write(bulk)
        sent = writer.transport.get_write_buffer_size()
        assert miner._queue("after\n") and miner._outbox.qsize() == 1  # not ahead of the bulk
        assert writer.transport.get_write_buffer_size() == sent
    finally:
        writer.transport.abort()
        server.close()
