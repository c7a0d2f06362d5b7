"""Content versions of the context and cheatsheet, stamped on every traced run.

A version is git's own object id for the path (tree for a directory, blob for
a file) so a trace can be matched to the exact commit content that produced
it. Uncommitted edits get ``<working hash>-dirty`` — hashed exactly as git
would hash them, so committing those edits yields the same id without the
suffix — and a directory outside any repository gets ``nogit-<hash[:12]>``.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import time
from pathlib import Path

import git

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
DIRTY_SUFFIX = "-dirty"
NOGIT_PREFIX = "nogit-"


def _object_id(kind: str, body: bytes) -> str:
    return hashlib.sha1(f"{kind} {len(body)}\0".encode() + body).hexdigest()


def blob_id(data: bytes) -> str:
    """git's blob id of file content (``git hash-object``)."""
    return _object_id("blob", data)


def _file_entry(path: Path) -> tuple[str, str]:
    """(git mode, blob id) of a working file or symlink."""
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode):
        return "120000", blob_id(os.fsencode(os.readlink(path)))
    mode = "100755" if st.st_mode & 0o111 else "100644"
    return mode, blob_id(path.read_bytes())


def _tree_id(files: dict[tuple[str, ...], tuple[str, str]]) -> str:
    """git's tree id of nested files given as {path parts: (mode, blob id)}."""
    subtrees: dict[str, dict[tuple[str, ...], tuple[str, str]]] = {}
    items: list[tuple[bytes, bytes]] = []  # (git's sort key, entry bytes)
    for parts, (mode, oid) in files.items():
        if len(parts) == 1:
            name = parts[0].encode()
            items.append((name, mode.encode() + b" " + name + b"\0" + bytes.fromhex(oid)))
        else:
            subtrees.setdefault(parts[0], {})[parts[1:]] = (mode, oid)
    for dirname, sub in subtrees.items():
        name = dirname.encode()
        # git orders a tree as if its name ended in "/"
        items.append((name + b"/", b"40000 " + name + b"\0" + bytes.fromhex(_tree_id(sub))))
    return _object_id("tree", b"".join(entry for _, entry in sorted(items)))


def working_id(path: Path, files: list[str] | None = None) -> str:
    """git's id for the working content at ``path``; ``files`` limits a directory to those relative paths."""
    path = Path(path)
    if path.is_file() or path.is_symlink():
        return _file_entry(path)[1]
    if not path.is_dir():
        return EMPTY_TREE
    if files is None:
        files = [
            p.relative_to(path).as_posix()
            for p in path.rglob("*")
            if (p.is_file() or p.is_symlink())
            and not any(part.startswith(".") or part == "__pycache__" for part in p.relative_to(path).parts)
        ]
    entries = {}
    for rel in files:
        p = path / rel
        if p.is_file() or p.is_symlink():  # tracked but deleted files are not content
            entries[tuple(rel.split("/"))] = _file_entry(p)
    return _tree_id(entries) if entries else EMPTY_TREE


# logs/HEAD grows on every commit, checkout and reset, even where the ref lives elsewhere (worktrees).
_GIT_FILES = ("HEAD", "index", "packed-refs", "info/exclude", "logs/HEAD")
# File times tick coarsely (a few ms): a file changed this recently may change again with
# the same stat, so a signature holding one is not remembered (git's "racy" entries).
RACY_NS = 2_000_000_000
_memo: dict[tuple[str, str], tuple[tuple[object, ...], str]] = {}
_memo_lock = threading.Lock()


def _stat_key(p: str) -> tuple[object, ...] | None:
    try:
        st = os.lstat(p)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino, st.st_mode)


def _signature(path: Path) -> tuple[object, ...]:
    """Everything a version depends on, by stat: the files under ``path`` and the git state around it.

    Covers content edits, new/removed/renamed files, commits, checkouts and
    staging (HEAD, the ref it names, index, packed-refs) and ignore rules
    (``.gitignore`` under ``path`` and in its ancestors, ``info/exclude``).
    """
    entries: list[tuple[object, ...]] = []
    top = str(path)
    if path.is_dir():
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if d != ".git"]
            for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                full = os.path.join(dirpath, name)
                entries.append((full, _stat_key(full)))
    else:
        entries.append((top, _stat_key(top)))
    for anc in (path, *path.parents):
        git_dir = anc / ".git"
        entries.append((str(anc / ".gitignore"), _stat_key(str(anc / ".gitignore"))))
        entries.append((str(git_dir), _stat_key(str(git_dir))))
        if git_dir.is_file():  # a worktree or submodule: "gitdir: <path>"
            try:
                text = git_dir.read_text().strip()
            except OSError:
                text = ""
            if text.startswith("gitdir: "):
                git_dir = (anc / text[8:]).resolve()
        if git_dir.is_dir():
            for name in _GIT_FILES:
                entries.append((name, _stat_key(str(git_dir / name))))
            try:
                head = (git_dir / "HEAD").read_text().strip()
            except OSError:
                head = ""
            entries.append(("HEAD->", head))
            if head.startswith("ref: "):
                ref = str(git_dir / head[5:])
                entries.append((ref, _stat_key(ref)))
    return tuple(entries)


def _racy(signature: tuple[object, ...]) -> bool:
    newest = max((st[0] for _, st in signature if isinstance(st, tuple)), default=0)
    return time.time_ns() - int(newest) < RACY_NS  # type: ignore[call-overload]


def content_version(path: Path, repo_root: Path) -> str:
    """The version of ``path``: HEAD's object id when unmodified, else ``<id>-dirty`` / ``nogit-<id12>``.

    Memoised per process on a stat signature of the files and of the git
    state (see :func:`_signature`): every traced run stamps two versions, and
    recomputing them costs two git subprocesses and a hash of every file.
    """
    path = Path(path).resolve()
    key = (str(path), str(Path(repo_root).resolve()))
    signature = _signature(path)
    with _memo_lock:
        hit = _memo.get(key)
    if hit is not None and hit[0] == signature:
        return hit[1]
    version = _content_version(path, repo_root)
    if _signature(path) == signature and not _racy(signature):  # unchanged while computing, settled
        with _memo_lock:
            if len(_memo) > 256:
                _memo.clear()
            _memo[key] = (signature, version)
    return version


def _content_version(path: Path, repo_root: Path) -> str:
    try:
        repo = git.Repo(repo_root, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return NOGIT_PREFIX + working_id(path)[:12]
    top = Path(repo.working_tree_dir or repo_root).resolve()
    try:
        rel = path.relative_to(top).as_posix()
    except ValueError:
        return NOGIT_PREFIX + working_id(path)[:12]
    if path.is_dir():
        # Tracked files plus untracked ones git would add (ignored files are not content).
        listed = repo.git.ls_files("--cached", "--others", "--exclude-standard", "-z", "--", rel or ".")
        prefix = "" if rel in ("", ".") else rel + "/"
        files = sorted({f[len(prefix) :] for f in listed.split("\0") if f})
        current = working_id(path, files)
    else:
        current = working_id(path)
    spec = "HEAD:" if rel == "." else f"HEAD:{rel}"
    try:
        committed = repo.git.rev_parse(spec)
    except git.GitCommandError:  # no commits yet, or the path is not in HEAD
        committed = EMPTY_TREE if current == EMPTY_TREE else None
    return current if current == committed else current + DIRTY_SUFFIX
