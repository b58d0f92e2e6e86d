"""Multipart bodies parsed off the event loop (ioc.http.forms) give routes exactly what Starlette's
own parser gives them: fields, files with their names, types, sizes and bytes; its refusals."""

from __future__ import annotations

import hashlib
import secrets
from typing import Annotated

import pytest
from fastapi import APIRouter, FastAPI, File, Form, Request, UploadFile
from fastapi.testclient import TestClient

from ioc.http.forms import BATCH_BYTES, OffLoopFormRoute


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _app(route_class: type | None) -> FastAPI:
    router = APIRouter(route_class=route_class) if route_class else APIRouter()

    @router.post("/upload")
    async def upload(
        title: Annotated[str, Form()], photos: Annotated[list[UploadFile], File()], note: Annotated[str, Form()] = ""
    ) -> dict[str, object]:
        return {
            "title": title,
            "note": note,
            "files": [
                {"name": p.filename, "type": p.content_type, "size": p.size, "sha": _sha(await p.read())}
                for p in photos
            ],
        }

    @router.post("/raw")
    async def raw(request: Request) -> dict[str, object]:
        form = await request.form()
        return {key: str(value) for key, value in form.items()}

    app = FastAPI()
    app.include_router(router)
    return app


def test_the_same_form_as_starlettes_parser_for_fields_and_files_over_several_batches() -> None:
    big = secrets.token_bytes(3 * BATCH_BYTES + 12_345)  # spans batches and rolls to disk
    files = [("photos", ("a.jpg", big, "image/jpeg")), ("photos", ("b.png", b"\x89PNG small", "image/png")),
             ("photos", ("empty.bin", b"", "application/octet-stream"))]  # fmt: skip
    data = {"title": "Cầu treo hỏng ván", "note": "dòng 1\r\ndòng 2"}
    with TestClient(_app(OffLoopFormRoute)) as ours, TestClient(_app(None)) as starlette:
        mine = ours.post("/upload", data=data, files=files)
        theirs = starlette.post("/upload", data=data, files=files)
        assert mine.status_code == theirs.status_code == 200, mine.text
        assert mine.json() == theirs.json()
        assert mine.json()["files"][0]["size"] == len(big)
        assert mine.json()["files"][0]["sha"] == hashlib.sha256(big).hexdigest()
        assert ours.post("/raw", data={"a": "1", "b": "ư"}).json() == {"a": "1", "b": "ư"}  # urlencoded: Starlette's


@pytest.mark.parametrize(
    ("body", "content_type", "detail"),
    [
        (b"--x\r\n", "multipart/form-data", "Missing boundary in multipart."),
        (b"--xx\r\nContent-Disposition: form-data\r\n\r\nx\r\n--xx--\r\n", "multipart/form-data; boundary=xx",
         'The Content-Disposition header field "name" must be provided.'),
        (b'--xx\r\nContent-Disposition: form-data; name="title"\r\n\r\n' + b"x" * (1 << 20 | 1) + b"\r\n--xx--\r\n",
         "multipart/form-data; boundary=xx", "Part exceeded maximum size of 1024KB."),
        (b"garbage, not multipart at all" * 10, "multipart/form-data; boundary=xx", None),
    ],
    ids=["no-boundary", "no-name", "field-over-1MB", "garbage"],
)  # fmt: skip
def test_malformed_bodies_are_refused_as_starlette_refuses_them(body: bytes, content_type: str, detail: str) -> None:
    with TestClient(_app(OffLoopFormRoute)) as ours, TestClient(_app(None)) as starlette:
        mine = ours.post("/upload", content=body, headers={"Content-Type": content_type})
        theirs = starlette.post("/upload", content=body, headers={"Content-Type": content_type})
    assert mine.status_code == theirs.status_code and 400 <= mine.status_code < 500, mine.text
    assert mine.json() == theirs.json()
    if detail is not None:
        assert mine.json()["detail"] == detail
