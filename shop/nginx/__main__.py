"""`python -m shop.nginx render --listen 8000 --upstream unix:/run/shop/gunicorn.sock ...` prints the front's
config; `python -m shop.nginx serve` runs nginx + gunicorn (make serve). Run from the project directory."""

import argparse
import os
import sys
from pathlib import Path

from shop import nginx

# The body limit of shop/settings.py (REQUEST_BODY_MAX_BYTES); tests/shop/test_nginx.py keeps the two equal.
BODY_MAX_BYTES = 262_144


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m shop.nginx")
    commands = parser.add_subparsers(dest="command", required=True)
    render = commands.add_parser("render", help="Print the nginx config for these values.")
    render.add_argument("--listen", required=True, help='Port or address:port nginx listens on, e.g. "8000".')
    render.add_argument("--upstream", required=True, help='gunicorn\'s address, e.g. "unix:/run/shop/gunicorn.sock".')
    render.add_argument("--run-dir", required=True, help="Directory of the pid file and temporary bodies.")
    render.add_argument("--log-dir", required=True, help="Directory of nginx-access.log and nginx-error.log.")
    render.add_argument("--workers", type=int, required=True, help="gunicorn workers behind this nginx.")
    render.add_argument("--threads", type=int, required=True, help="Threads per gunicorn worker.")
    render.add_argument("--user", default="", help="User of nginx's workers when it starts as root.")
    commands.add_parser("serve", help="nginx on PORT in front of gunicorn on a unix socket, in the foreground.")
    args = parser.parse_args(argv)
    if args.command == "render":
        config = nginx.FrontConfig(
            listen=args.listen,
            upstream=args.upstream,
            run_dir=args.run_dir,
            log_dir=args.log_dir,
            body_max_bytes=BODY_MAX_BYTES,
            max_in_flight=nginx.max_in_flight(workers=args.workers, threads=args.threads),
            user=args.user,
        )
        sys.stdout.write(nginx.render(config))
        return 0
    return nginx.serve(port=os.environ.get("PORT", "8000"), state_dir=Path(".shop"), body_max_bytes=BODY_MAX_BYTES)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
