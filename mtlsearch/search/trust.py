"""Signed search state: resuming unpickles Ray's state, so a directory is resumed only if this user's key signed it.

When a search stops (finished, interrupted or failed), `sign` writes `trust.json` in its run directory: the
SHA-256 of every file a resume loads as code (Ray's pickles and search.json, which names the space file and
dataset module a resume imports), with an HMAC-SHA256 of that list keyed by a secret kept in the user's config
directory, outside any run directory. `verify` checks it before Ray or the space file sees the directory.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

from ..errors import UserError

MANIFEST = "trust.json"
CONFIG = "search.json"  # names the space file and dataset module a resume imports
RAY_DIR = "ray"
PICKLE_SUFFIXES = (".pkl", ".pickle")  # in trial directories: params.pkl, error.pkl; Ray's other state is top-level
KEY_BYTES = 32
FORMAT = 1


def key_path() -> Path:
    """`$XDG_CONFIG_HOME/mtlsearch/secret`, by default `~/.config/mtlsearch/secret`."""
    config = os.environ.get("XDG_CONFIG_HOME", "")
    base = Path(config) if os.path.isabs(config) else Path.home() / ".config"
    return base / "mtlsearch" / "secret"


def user_key(create: bool) -> bytes | None:
    """This user's signing key; created once (mode 0600) when `create`, else None where there is none yet."""
    path = key_path()
    if not path.exists():
        if not create:
            return None
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        staged = path.with_name(f".secret-{os.getpid()}-{secrets.token_hex(4)}")
        descriptor = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as f:
            f.write(secrets.token_bytes(KEY_BYTES))
        try:
            os.link(staged, path)  # atomic: of two processes creating the key at once, one key wins
        except FileExistsError:
            pass
        finally:
            staged.unlink()
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise UserError(f"{path} is not a key mtlsearch wrote ({len(key)} bytes, expected {KEY_BYTES}); remove it "
                        f"and a new one is made (directories signed with the old key then need `trust`)", ("trust",))
    return key


def loaded_files(run_dir: Path) -> list[str]:
    """The files a resume loads as code, relative to `run_dir`: search.json, every file at the top of ray/
    (tuner.pkl, experiment, searcher and callback state) and every pickle below it."""
    ray_dir = run_dir / RAY_DIR
    found = [p for p in ray_dir.rglob("*") if p.is_file() and (p.parent == ray_dir or p.suffix in PICKLE_SUFFIXES)]
    names = [p.relative_to(run_dir).as_posix() for p in found]
    return sorted([CONFIG] + names if (run_dir / CONFIG).is_file() else names)


def digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def signature(key: bytes, files: dict[str, str]) -> str:
    """The HMAC of the manifest's file list, so neither a digest nor the list itself can be edited unnoticed."""
    text = json.dumps({"format": FORMAT, "files": files}, sort_keys=True, separators=(",", ":"))
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def sign(run_dir: str | Path) -> None:
    """Record, under this user's key, the digests of what a resume of `run_dir` will load (atomically)."""
    run_dir = Path(run_dir)
    files = {name: digest(run_dir / name) for name in loaded_files(run_dir)}
    manifest = {"format": FORMAT, "files": files, "hmac": signature(user_key(create=True), files)}
    staged = run_dir / f".{MANIFEST}.{os.getpid()}-{secrets.token_hex(4)}"  # several workers may share run_dir
    staged.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    os.replace(staged, run_dir / MANIFEST)


def refusal(run_dir: Path, reason: str) -> UserError:
    return UserError(f"will not resume {run_dir}: {reason}; resuming unpickles its saved state, which runs as code. "
                     f"`trust` resumes a directory you did not write: its pickles will run as code", ("trust",))


def verify(run_dir: str | Path) -> None:
    """Refuse (UserError) unless this user's key signed exactly the files a resume of `run_dir` loads."""
    run_dir = Path(run_dir)
    try:
        manifest = json.loads((run_dir / MANIFEST).read_text())
        files, mac = dict(manifest["files"]), str(manifest["hmac"])
    except FileNotFoundError:
        raise refusal(run_dir, f"it has no {MANIFEST}, so this user did not write it") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise refusal(run_dir, f"its {MANIFEST} is not one mtlsearch wrote") from None
    key = user_key(create=False)
    if key is None or not hmac.compare_digest(signature(key, files), mac):
        raise refusal(run_dir, f"its {MANIFEST} was not signed with this user's key ({key_path()}): another user "
                               f"or machine wrote it, or it was edited")
    present = loaded_files(run_dir)
    for name in present:
        if name not in files:
            raise refusal(run_dir, f"{name} was added after the search wrote its state")
        if not hmac.compare_digest(digest(run_dir / name), files[name]):
            raise refusal(run_dir, f"{name} changed after the search wrote it")
    missing = sorted(set(files) - set(present))
    if missing:
        raise refusal(run_dir, f"{missing[0]} is missing")
