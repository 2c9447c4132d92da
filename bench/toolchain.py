"""Install and build what the peers need, so that `make bench` works from a clean clone.

Go and gorilla/websocket come from Debian's packages and are built offline; the Node
peer's `ws` comes from npm through the committed package-lock.json; the FastAPI peer
needs uvicorn with a WebSocket implementation (the `websockets` package).
"""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PEERS_DIR = BENCH_DIR / "peers"
BUILD_DIR = BENCH_DIR / ".build"
GO_PEER_BINARY = BUILD_DIR / "go-peer"
GORILLA_SOURCE = Path("/usr/share/gocode/src/github.com/gorilla/websocket")
GO_PACKAGES = ("golang-go", "golang-github-gorilla-websocket-dev")
INSTALL_TIMEOUT = 900.0
BUILD_TIMEOUT = 300.0


class ToolchainError(RuntimeError):
    """A peer cannot be prepared on this machine; the message says what to install."""


def _run(command: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
    print(f"[bench] $ {' '.join(command)}", file=sys.stderr, flush=True)
    subprocess.run(command, cwd=cwd, env=env, check=True, timeout=INSTALL_TIMEOUT)


def _apt_install(packages: tuple[str, ...]) -> None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ToolchainError(f"install the Debian packages {' '.join(packages)} (needs root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "update", "-qq"], env=env)
    _run(["apt-get", "install", "-y", "-qq", *packages], env=env)


def prepare_go_peer() -> None:
    """Build the Go peer from bench/peers/go against Debian's gorilla/websocket, offline."""
    if shutil.which("go") is None or not GORILLA_SOURCE.is_dir():
        _apt_install(GO_PACKAGES)
    source_dir = PEERS_DIR / "go"
    sources = [*source_dir.glob("*.go"), source_dir / "go.mod"]
    newest_source = max(path.stat().st_mtime for path in sources)
    if GO_PEER_BINARY.exists() and GO_PEER_BINARY.stat().st_mtime >= newest_source:
        return
    BUILD_DIR.mkdir(exist_ok=True)
    # go.mod replaces gorilla/websocket by Debian's copy: nothing is downloaded.
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOPROXY": "off", "GO111MODULE": "on"}
    subprocess.run(
        ["go", "build", "-o", str(GO_PEER_BINARY), "."],
        cwd=source_dir,
        env=env,
        check=True,
        timeout=BUILD_TIMEOUT,
    )


def prepare_node_peer() -> None:
    """Install `ws` for the Node peer from its package-lock.json."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        _apt_install(("nodejs", "npm"))
    peer_dir = PEERS_DIR / "node"
    if not (peer_dir / "node_modules" / "ws").is_dir():
        _run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=peer_dir)


def prepare_fastapi_peer() -> None:
    missing = [name for name in ("fastapi", "uvicorn") if importlib.util.find_spec(name) is None]
    if (
        importlib.util.find_spec("websockets") is None
        and importlib.util.find_spec("wsproto") is None
    ):
        missing.append("websockets")
    if missing:
        raise ToolchainError(
            f"the FastAPI peer needs {', '.join(missing)} in this Python environment "
            "(pip install -e '.[bench]')"
        )


def prepare_hubbub() -> None:
    if importlib.util.find_spec("hubbub") is None:
        raise ToolchainError("hubbub is not importable: pip install -e . in this environment")
