"""AiohttpSender against a raw socket server that answers exactly the bytes a test gives:
the body cap holds with and without Content-Length, when the length lies and when the body
is compressed; failures become SendError / SendTimeout; redirects are not followed."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Awaitable, Callable

import pytest

from promptlab.providers.base import HttpRequest
from promptlab.runner import client
from promptlab.runner.client import AiohttpSender, Reply, SendError, SendTimeout

CAP = 4096

Answer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _head(status: str, *headers: str) -> bytes:
    return ("\r\n".join((f"HTTP/1.1 {status}", *headers)) + "\r\n\r\n").encode()


def fixed(raw: bytes, hold: bool = False) -> Answer:
    """Answer every request with `raw`, then close (or keep the socket open if `hold`)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")  # the request's body is small: ignore it
            writer.write(raw)
            await writer.drain()
            if hold:
                await asyncio.sleep(5)
        except ConnectionError:
            pass  # the client hung up first (a reply over the cap)
        finally:
            writer.close()

    return answer


def send(answer: Answer, timeout: float = 5.0, cap: int = CAP) -> Reply:
    async def go() -> Reply:
        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        sender = AiohttpSender(1)
        try:
            return await sender.send(HttpRequest(
                "POST", f"http://127.0.0.1:{port}/v1/chat/completions",
                {"content-type": "application/json"}, b"{}"), timeout)
        finally:
            await sender.aclose()
            server.close()
            # Handlers still sleeping (hold=True) are cancelled with the loop.

    saved = client.MAX_BODY_BYTES
    client.MAX_BODY_BYTES = cap
    try:
        return asyncio.run(go())
    finally:
        client.MAX_BODY_BYTES = saved


def test_a_body_with_content_length_is_read_whole() -> None:
    body = b'{"ok": ' + b"1" * 1000 + b"}"
    reply = send(fixed(_head("200 OK", "Content-Type: application/json",
                             "X-Request-ID: abc", f"Content-Length: {len(body)}") + body))
    assert reply.status == 200 and reply.body == body
    assert reply.headers["x-request-id"] == "abc"  # names in lower case
    assert reply.headers.get("content-type") == "application/json"
    assert dict(reply.headers)["content-length"] == str(len(body))


def test_a_body_at_the_cap_is_read_and_one_over_it_is_an_error() -> None:
    at = b"a" * CAP
    assert send(fixed(_head("200 OK", f"Content-Length: {CAP}") + at)).body == at
    with pytest.raises(SendError, match="over"):
        send(fixed(_head("200 OK", f"Content-Length: {CAP + 1}") + at + b"a"))


def test_a_content_length_over_the_cap_fails_before_the_body_arrives() -> None:
    # The server announces 1 GB and sends a little: no waiting for the rest.
    with pytest.raises(SendError, match="over"):
        send(fixed(_head("200 OK", "Content-Length: 1000000000") + b"a" * 100, hold=True))


def test_a_chunked_body_without_length_is_counted() -> None:
    def chunked(total: int) -> bytes:
        piece = b"b" * 1000
        out = b""
        for _ in range(total // 1000):
            out += b"3e8\r\n" + piece + b"\r\n"
        return _head("200 OK", "Transfer-Encoding: chunked") + out + b"0\r\n\r\n"

    assert send(fixed(chunked(3000))).body == b"b" * 3000
    with pytest.raises(SendError, match="over"):
        send(fixed(chunked(10_000)))


def test_a_body_ended_by_closing_is_counted() -> None:
    assert send(fixed(_head("200 OK", "Connection: close") + b"c" * 3000)).body == b"c" * 3000
    with pytest.raises(SendError, match="over"):
        send(fixed(_head("200 OK", "Connection: close") + b"c" * 10_000))


def test_a_content_length_that_lies_low_is_a_send_error() -> None:
    # aiohttp's parser stops the body at the stated length and reads the rest as the next
    # message: a bad status line, not more body.
    with pytest.raises(SendError, match="Bad status line"):
        send(fixed(_head("200 OK", "Content-Length: 10") + b"d" * 10_000))


def test_a_body_shorter_than_its_content_length_is_a_send_error() -> None:
    with pytest.raises(SendError):
        send(fixed(_head("200 OK", "Content-Length: 3000") + b"e" * 100))


def test_a_compressed_body_is_capped_after_decompression() -> None:
    bomb = gzip.compress(b"f" * 100_000)
    assert len(bomb) < CAP
    with pytest.raises(SendError, match="decompressed"):
        send(fixed(_head("200 OK", "Content-Encoding: gzip", f"Content-Length: {len(bomb)}")
                   + bomb))
    small = gzip.compress(b'{"ok": true}')
    reply = send(fixed(_head("200 OK", "Content-Encoding: gzip",
                             f"Content-Length: {len(small)}") + small))
    assert reply.body == b'{"ok": true}'


def test_no_answer_in_time_is_a_send_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.sleep(5)
        finally:
            writer.close()

    with pytest.raises(SendTimeout):
        send(silent, timeout=0.2)


def test_a_dropped_connection_is_a_send_error() -> None:
    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
        finally:
            writer.close()

    with pytest.raises(SendError):
        send(drop)


def test_a_redirect_is_returned_not_followed() -> None:
    reply = send(fixed(_head("302 Found", "Location: http://elsewhere.invalid/x",
                             "Content-Length: 0")))
    assert reply.status == 302 and reply.headers["location"] == "http://elsewhere.invalid/x"
    assert reply.body == b""


def test_a_content_length_beside_chunked_encoding_does_not_lift_the_cap() -> None:
    chunks = b"".join(b"3e8\r\n" + b"g" * 1000 + b"\r\n" for _ in range(10)) + b"0\r\n\r\n"
    with pytest.raises(SendError):
        send(fixed(_head("200 OK", "Content-Length: 10", "Transfer-Encoding: chunked")
                   + chunks))


def test_reply_headers_read_as_a_lower_case_dict_where_the_last_repeat_wins() -> None:
    reply = send(fixed(_head("429 Too Many Requests", "Retry-After: 1", "retry-after: 2",
                             "X-RateLimit-Remaining-Requests: 0", "Content-Length: 0")))
    assert reply.headers["retry-after"] == "2" and reply.headers.get("Retry-After") is None
    assert reply.headers.get("x-ratelimit-remaining-requests") == "0"
    assert "content-length" in reply.headers and "missing" not in reply.headers
    assert dict(reply.headers) == {"retry-after": "2", "x-ratelimit-remaining-requests": "0",
                                   "content-length": "0"}
    assert reply.headers == {"retry-after": "2", "x-ratelimit-remaining-requests": "0",
                             "content-length": "0"}
