"""Multipart bodies parsed off the event loop.

Starlette parses ``multipart/form-data`` on the event loop: every 64 KB piece of a 3 MB photo
goes through ``python-multipart`` there, and every piece past the first megabyte of a file is
written to its temporary file through a hop to the thread pool (some 50 hops per photo, each
waiting for a thread the sync routes also need). Under a flood of uploads the reads of the
operators' screens waited behind all of that (``GET /api/alerts`` p99 about twice its idle value).

Here the event loop only *receives* the body: the pieces are gathered into batches of
:data:`BATCH_BYTES` and each batch is fed to the parser in one worker thread (the parser, the
field buffers and the files' writes all happen there; one hop per megabyte). The parser is
Starlette's own (its limits on fields, files and part sizes, its errors, its ``UploadFile``
objects), so routes see exactly what they saw before.

The body's size is still limited while it streams in, before any of this reads it: the request
guard (:mod:`ioc.http.guards`) sits outside every route and cuts a body at its route's limit.

Routes that take files use :class:`OffLoopFormRoute` (``APIRouter(route_class=...)``).
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Coroutine
from contextlib import aclosing
from typing import Any

import anyio.to_thread
from fastapi import Request, Response
from fastapi.routing import APIRoute
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

#: Body bytes gathered on the loop before one hop to a thread parses them. Bigger batches mean
#: fewer hops; each batch is held in memory once (20 uploads at once: 20 MB).
BATCH_BYTES = 1 << 20


class _ThreadedMultiPartParser(MultiPartParser):
    """Starlette's parser, fed synchronously (in a worker thread) instead of from an async stream
    (its ``stream`` is unused): its callbacks collect fields and open files; :meth:`feed` writes
    the files' data directly."""

    def start(self) -> None:
        _, params = parse_options_header(self.headers["Content-Type"])
        charset = params.get(b"charset", "utf-8")
        if isinstance(charset, bytes):
            charset = charset.decode("latin-1")
        try:
            self._charset = codecs.lookup(charset).name
        except LookupError:
            self._charset = "latin-1"
        try:
            boundary = params[b"boundary"]
        except KeyError:
            raise MultiPartException("Missing boundary in multipart.") from None
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self.on_part_begin,
                "on_part_data": self.on_part_data,
                "on_part_end": self.on_part_end,
                "on_header_field": self.on_header_field,
                "on_header_value": self.on_header_value,
                "on_header_end": self.on_header_end,
                "on_headers_finished": self.on_headers_finished,
                "on_end": self.on_end,
            },
        )

    def feed(self, chunks: list[bytes], final: bool) -> None:
        """Parse ``chunks`` (and finish when ``final``); runs in a worker thread."""
        try:
            for chunk in chunks:
                self._parser.write(chunk)
                self._flush()
            if final:
                self._parser.finalize()
                self._flush()
        except FormParserError as exc:
            self.close_files()
            raise MultiPartException("Invalid multipart data.") from exc
        except BaseException:
            self.close_files()
            raise

    def _flush(self) -> None:
        for part, data in self._file_parts_to_write:
            assert part.file is not None
            part.file.file.write(data)
            if part.file.size is not None:
                part.file.size += len(data)
        for part in self._file_parts_to_finish:
            assert part.file is not None
            part.file.file.seek(0)
        self._file_parts_to_write.clear()
        self._file_parts_to_finish.clear()

    def close_files(self) -> None:
        for file in self._files_to_close_on_error:
            file.close()

    def result(self) -> FormData:
        return FormData(self.items)


class OffLoopFormRequest(Request):
    """A request whose multipart form is parsed in worker threads (see the module docstring);
    other bodies as Starlette does."""

    async def _get_form(
        self, *, max_files: int | float = 1000, max_fields: int | float = 1000, max_part_size: int = 1024 * 1024
    ) -> FormData:
        if self._form is not None:
            return self._form
        content_type, _ = parse_options_header(self.headers.get("Content-Type"))
        if content_type != b"multipart/form-data":
            return await super()._get_form(max_files=max_files, max_fields=max_fields, max_part_size=max_part_size)
        no_stream: Any = None  # fed by feed(), not from a stream
        parser = _ThreadedMultiPartParser(
            self.headers, no_stream, max_files=max_files, max_fields=max_fields, max_part_size=max_part_size
        )
        try:
            parser.start()  # reads the Content-Type header only
            batch: list[bytes] = []
            size = 0
            try:
                async with aclosing(self.stream()) as stream:
                    async for chunk in stream:  # the loop only receives; a thread parses each batch
                        if chunk:
                            batch.append(chunk)
                            size += len(chunk)
                        if size >= BATCH_BYTES:
                            await anyio.to_thread.run_sync(parser.feed, batch, False)
                            batch, size = [], 0
            except BaseException:
                parser.close_files()  # the client went away (or the guard cut the body): nothing kept
                raise
            await anyio.to_thread.run_sync(parser.feed, batch, True)
        except MultiPartException as exc:
            raise HTTPException(status_code=400, detail=exc.message) from None
        self._form = parser.result()
        return self._form


class OffLoopFormRoute(APIRoute):
    """A route whose handler gets an :class:`OffLoopFormRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def off_loop_form_handler(request: Request) -> Response:
            return await handler(OffLoopFormRequest(request.scope, request.receive, request._send))

        return off_loop_form_handler
