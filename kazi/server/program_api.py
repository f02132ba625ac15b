"""The program (``/api/v1/program``): what is loaded, uploading and validating a zip of a program folder,
the errors of its task code; and unpacking such a zip safely (:func:`unpack_program`)."""

import errno
import io
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from kazi.errors import ProgramError
from kazi.program.loader import inspect_tasks
from kazi.server.deps import API, Admin, ApiContext, ApiError, Caller, Ctx, errors, problem_dicts
from kazi.server.schemas import ProgramOut, ValidationOut

#: a program upload (the zip as sent) and what it may unpack to
MAX_PROGRAM_ZIP = 50 * 1024 * 1024
MAX_PROGRAM_UNPACKED = 200 * 1024 * 1024
MAX_PROGRAM_FILES = 20_000


program_routes = APIRouter(prefix=API, tags=["program"])

_ZIP_BODY: dict[str, Any] = {"requestBody": {"required": True, "description": "a zip of the program folder "
                                             "(tasks.js or tasks.py at its root or in its single top folder)",
                                             "content": {"application/zip": {"schema": {"type": "string",
                                                                                        "format": "binary"}}}}}


def _program_out(c: ApiContext) -> ProgramOut:
    info = c.service.program_info()
    if info is None:
        return ProgramOut(loaded=False)
    return ProgramOut(loaded=True, version=info.version, loaded_at=info.loaded_at, kind=info.kind,
                      warnings=problem_dicts(info.warnings))


@program_routes.get("/program", summary="The loaded program: version, load time, warnings",
                    response_model=ProgramOut, responses=errors(401))
def get_program(_user: Caller, c: Ctx) -> ProgramOut:
    return _program_out(c)


async def _zip_body(request: Request) -> bytes:
    if request.headers.get("content-type", "").startswith("multipart/"):
        raise ApiError(400, "send the zip as the raw request body (curl --data-binary @program.zip "
                            "-H 'Content-Type: application/zip'), not as a form")
    data = bytearray()
    async for chunk in request.stream():
        data.extend(chunk)
        if len(data) > MAX_PROGRAM_ZIP:
            raise ApiError(413, f"the program zip is larger than {MAX_PROGRAM_ZIP // (1024 * 1024)} MB")
    if not data:
        raise ApiError(400, "empty body: send a zip of the program folder")
    return bytes(data)


def unpack_program(data: bytes, dest: Path) -> Path:
    """Unpack a program zip into ``dest`` and return the program folder (the zip's root, or its single top
    folder, as zipping a folder gives).

    Whatever the zip holds, the answer is the program folder or a 4xx saying which entry is wrong, never a
    500: paths that would land outside ``dest`` (zip slip), an entry that is both a file and a folder (or
    twice a file), an entry whose data does not match its header (a lying size or checksum, a damaged or
    encrypted entry) and zip bombs (the declared sizes are summed first; the bytes really written are
    counted too, so a header that under-declares gains nothing)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise ApiError(400, "the body is not a zip file") from exc
    with archive:
        infos = [i for i in archive.infolist() if not i.filename.startswith("__MACOSX/")]
        if len(infos) > MAX_PROGRAM_FILES:
            raise ApiError(413, f"the zip holds {len(infos)} entries; at most {MAX_PROGRAM_FILES} are accepted")
        if sum(i.file_size for i in infos) > MAX_PROGRAM_UNPACKED:
            raise ApiError(413, f"the zip unpacks to more than {MAX_PROGRAM_UNPACKED // (1024 * 1024)} MB")
        root = dest.resolve()
        targets = _zip_targets(infos, root)
        written = 0
        for info, target in zip(infos, targets, strict=True):
            written += _extract_entry(archive, info, target, MAX_PROGRAM_UNPACKED - written)
    entries = [p for p in root.iterdir() if p.name != "__MACOSX"]
    if len(entries) == 1 and entries[0].is_dir() and not (root / "tasks.js").exists():
        return entries[0]
    return root


def _zip_targets(infos: list[zipfile.ZipInfo], root: Path) -> list[Path]:
    """Where each entry lands under ``root``; 400 for an entry outside it, a path that is both a file and a
    folder (``a`` and ``a/b``, or ``a`` and ``a/``), and a file that appears twice."""
    targets: list[Path] = []
    files: dict[Path, str] = {}
    folders: dict[Path, str] = {}
    for info in infos:
        target = (root / info.filename).resolve()
        if not target.is_relative_to(root) or (target == root and not info.is_dir()):
            raise ApiError(400, f"zip entry {info.filename!r} would be written outside the program folder")
        targets.append(target)
        if info.is_dir():
            folders.setdefault(target, info.filename)
        elif target in files:
            raise ApiError(400, f"zip entry {info.filename!r} appears twice: a zip of a folder holds each file once")
        else:
            files[target] = info.filename
        for parent in target.parents if target != root else ():
            if parent == root:
                break
            folders.setdefault(parent, info.filename)
    for target, name in files.items():
        if target in folders:
            raise ApiError(400, f"zip entry {name!r} is both a file and a folder (see {folders[target]!r}): "
                                "a folder cannot hold a file and a folder of one name")
    return targets


#: what the file system answers for a name it cannot hold (too long, not a valid name): the zip's fault, a 400
_NAME_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.EISDIR, errno.ENOTDIR, errno.EEXIST, errno.EINVAL, errno.EILSEQ})


def _extract_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, budget: int) -> int:
    """Write one entry to ``target``, at most ``budget`` bytes; the bytes written. 400 for an entry that
    cannot be read as its header says, 413 past the budget."""
    try:
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            return 0
        target.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        with archive.open(info) as src, target.open("wb") as out:
            while chunk := src.read(1024 * 1024):
                written += len(chunk)
                if written > budget:
                    raise ApiError(413, f"the zip unpacks to more than {MAX_PROGRAM_UNPACKED // (1024 * 1024)} MB")
                out.write(chunk)
        return written
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError) as exc:
        # BadZipFile: a checksum or size that does not match the data (bytes beyond the declared size are
        # cut by zipfile, so the checksum fails); RuntimeError: encrypted; NotImplementedError: an unknown
        # compression method
        raise ApiError(400, f"zip entry {info.filename!r} cannot be read: {exc}") from exc
    except OSError as exc:
        if exc.errno not in _NAME_ERRNOS:
            raise
        raise ApiError(400, f"zip entry {info.filename!r} cannot be unpacked: {exc.strerror}") from exc


@program_routes.post("/program/validate", summary="Validate a program zip without loading it (admin)",
                     response_model=ValidationOut, responses=errors(400, 401, 403, 413, 422),
                     openapi_extra=_ZIP_BODY)
async def validate_program(request: Request, _admin: Admin) -> ValidationOut:
    """Every problem at once: a 422 lists the errors, each located (file, definition, field, fix); a valid
    program answers `valid: true` with its warnings."""
    data = await _zip_body(request)

    def check() -> ValidationOut:
        with tempfile.TemporaryDirectory(prefix="kazi-validate-") as tmp:
            problems = inspect_tasks(unpack_program(data, Path(tmp)))
        errs = [p for p in problems if p.severity == "error"]
        if errs:
            raise ProgramError(f"the program has {len(errs)} error(s)", problems)
        return ValidationOut(valid=True, warnings=problem_dicts(problems))

    return await run_in_threadpool(check)


@program_routes.post("/program", summary="Upload and load a program zip (admin)", response_model=ProgramOut,
                     responses=errors(400, 401, 403, 413, 422), openapi_extra=_ZIP_BODY)
async def upload_program(request: Request, _admin: Admin, c: Ctx) -> ProgramOut:
    """Validates, loads and starts using the program (every user's tasks are recomputed). With any error,
    a 422 lists them all and the previous program keeps running."""
    data = await _zip_body(request)

    def load() -> ProgramOut:
        # The service keeps the program's files in the store, so the upload only needs a scratch folder.
        with tempfile.TemporaryDirectory(prefix="kazi-upload-") as tmp:
            c.service.load_program(unpack_program(data, Path(tmp)))
        return _program_out(c)

    return await run_in_threadpool(load)


@program_routes.get("/program/errors", summary="Errors of the program's task code, from every process (admin)",
                    responses={200: {"description": "the stored errors, most recently seen first"},
                               **errors(401, 403, 422)})
def program_errors(_admin: Admin, c: Ctx, limit: Annotated[int, Query(ge=1, le=1000)] = 200,
                   offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> list[dict[str, Any]]:
    """A callback that throws, overflows the stack, runs too long or eats memory never stops the service:
    the containers it failed for keep their task documents, and its errors land here, whichever process
    (API, worker, compute process) saw them. One entry per program version, definition, contact or report
    and message, with ``count``, ``first_seen`` and ``last_seen`` (epoch ms), the most recently seen first."""
    return c.service.errors(limit, offset)
