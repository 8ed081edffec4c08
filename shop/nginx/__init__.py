"""The nginx front of the shop (nginx.conf beside this file): its rendering, and a local nginx + gunicorn pair.

`python -m shop.nginx render ...` writes the config the instance runs (opsinfra/cfn/userdata/shop-release.sh);
`python -m shop.nginx serve` is `make serve`: nginx on PORT in front of gunicorn on a unix socket, both in the
foreground, each with its own run and log directory, so no system nginx service is involved.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

# Every deadline a client gets from nginx, in seconds: for the request headers, between two body reads, between
# two response writes. Shorter than the ALB's 60 s idle timeout.
CLIENT_TIMEOUT = 10
# Longer than gunicorn's 20 s worker timeout, shorter than CloudFront's 30 s origin read timeout.
UPSTREAM_READ_TIMEOUT = 25
# Requests nginx lets be at gunicorn at once, per gunicorn thread: a queue inside gunicorn adds latency, not
# throughput, once every thread is busy. Measured by bench/shedding.py at 4x the checkout capacity: 1 per thread
# kept the admitted p99 at 856 ms where 2 gave 1,335 ms (docs/serving.md).
IN_FLIGHT_PER_THREAD = 1

PROJECT_DIR = Path(__file__).resolve().parent.parent.parent
_PLACEHOLDER = re.compile(r"\{\{([a-z_]+)\}\}")


@dataclass(frozen=True)
class FrontConfig:
    listen: str  # "8000", "127.0.0.1:8000"
    upstream: str  # "unix:/run/shop/gunicorn.sock", "127.0.0.1:8001"
    run_dir: str  # pid file and temporary bodies
    log_dir: str  # nginx-access.log, nginx-error.log, the app's metrics.log
    body_max_bytes: int
    max_in_flight: int
    user: str = ""  # the workers' user when the master runs as root; empty: nginx's default
    client_timeout: int = CLIENT_TIMEOUT
    upstream_read_timeout: int = UPSTREAM_READ_TIMEOUT


def max_in_flight(*, workers: int, threads: int) -> int:
    return workers * threads * IN_FLIGHT_PER_THREAD


def render(config: FrontConfig) -> str:
    template = resources.files(__name__).joinpath("nginx.conf").read_text()
    values = {
        "listen": config.listen,
        "upstream": config.upstream,
        "run_dir": config.run_dir,
        "log_dir": config.log_dir,
        "body_max_bytes": str(config.body_max_bytes),
        "max_in_flight": str(config.max_in_flight),
        "user": f"user {config.user};\n" if config.user else "",
        "client_timeout": str(config.client_timeout),
        "upstream_read_timeout": str(config.upstream_read_timeout),
    }
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if not found:
        raise SystemExit("shop: nginx is not installed (make serve installs it: apt-get install -y nginx).")
    return found


def write_config(config: FrontConfig, path: Path) -> Path:
    Path(config.run_dir).mkdir(parents=True, exist_ok=True)
    Path(config.log_dir).mkdir(parents=True, exist_ok=True)
    path.write_text(render(config))
    return path


@dataclass
class Pair:
    url: str
    config: FrontConfig
    nginx: subprocess.Popen
    gunicorn: subprocess.Popen

    def stop(self, timeout: float = 40) -> None:
        """SIGTERM to both (gunicorn finishes its requests within its graceful timeout), then wait for them."""
        for process in (self.nginx, self.gunicorn):
            if process.poll() is None:
                process.terminate()
        for process in (self.nginx, self.gunicorn):
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def start(
    *,
    port: int | str,
    run_dir: Path,
    workers: int,
    threads: int,
    body_max_bytes: int,
    env: dict | None = None,
    client_timeout: int = CLIENT_TIMEOUT,
    in_flight: int | None = None,
    output=None,
) -> Pair:
    """nginx on `port` (all addresses when only a number) in front of gunicorn (shop/gunicorn.conf.py) on a unix
    socket in `run_dir`, its pid, temporary files and logs there too. Returns once both processes are started;
    `wait_ready` waits for /health."""
    run_dir = Path(run_dir).resolve()
    socket = run_dir / "gunicorn.sock"
    config = FrontConfig(
        listen=str(port),
        upstream=f"unix:{socket}",
        run_dir=str(run_dir),
        log_dir=str(run_dir / "logs"),
        body_max_bytes=body_max_bytes,
        max_in_flight=in_flight if in_flight is not None else max_in_flight(workers=workers, threads=threads),
        client_timeout=client_timeout,
    )
    config_path = write_config(config, run_dir / "nginx.conf")
    gunicorn_env = {
        **(os.environ if env is None else env),
        "GUNICORN_WORKERS": str(workers),
        "GUNICORN_THREADS": str(threads),
    }
    # The app's EMF metrics beside nginx's logs, as on an instance (docs/metrics.md); METRICS_EMF_FILE= turns them off.
    gunicorn_env.setdefault("METRICS_EMF_FILE", str(Path(config.log_dir) / "metrics.log"))
    gunicorn = subprocess.Popen(  # noqa: S603 - our own arguments
        [sys.executable, "-m", "gunicorn", "--config", "shop/gunicorn.conf.py", "--bind", f"unix:{socket}"],
        cwd=PROJECT_DIR,
        env=gunicorn_env,
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=output,
    )
    nginx = subprocess.Popen(  # noqa: S603 - our own arguments
        # -e: not even the system's error log at start; -g: in the foreground, a child of this process.
        [nginx_binary(), "-c", str(config_path), "-e", "stderr", "-g", "daemon off;"],
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=output,
    )
    host = str(port) if ":" in str(port) else f"127.0.0.1:{port}"
    return Pair(url=f"http://{host}", config=config, nginx=nginx, gunicorn=gunicorn)


def wait_ready(pair: Pair, timeout: float = 30) -> None:
    if not health_answers(pair.url, timeout, processes=(pair.nginx, pair.gunicorn)):
        raise RuntimeError(f"/health did not answer through nginx at {pair.url} within {timeout} s")


def health_answers(url: str, timeout: float, *, processes: tuple[subprocess.Popen, ...] = ()) -> bool:
    """Whether GET `url`/health answers 200 within `timeout` seconds; RuntimeError as soon as one of `processes`
    (those serving it) has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(f"{process.args[0]} exited with {process.returncode} before /health answered")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.2)
    return False


def serve(*, port: str, state_dir: Path, body_max_bytes: int) -> int:
    """`make serve`: the pair in the foreground until Ctrl-C/SIGTERM or until either process stops."""
    pair = start(
        port=f"127.0.0.1:{port}",
        run_dir=state_dir / "serve",
        workers=int(os.environ.get("GUNICORN_WORKERS") or (os.cpu_count() or 1) * 2),
        threads=int(os.environ.get("GUNICORN_THREADS") or 4),
        body_max_bytes=body_max_bytes,
    )
    print(f"shop: nginx on {pair.url} -> gunicorn on {pair.config.upstream}; logs in {pair.config.log_dir}", flush=True)
    stopping = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.append(True))
    try:
        while not stopping and pair.nginx.poll() is None and pair.gunicorn.poll() is None:
            time.sleep(0.5)
    finally:
        pair.stop()
    return 0 if stopping else (pair.gunicorn.returncode or pair.nginx.returncode or 1)
