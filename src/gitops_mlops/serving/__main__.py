"""`python -m gitops_mlops.serving --model-dir DIR [--port N]`: the serving image's command.

uvicorn (httptools parser, uvloop) runs the ASGI app; it handles SIGTERM by finishing the
requests in flight and exiting, which matters because it is PID 1 in the container.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gitops_mlops.serving")
    parser.add_argument(
        "--model-dir", type=Path, default=Path(os.environ.get("MLOPS_MODEL_DIR", "/model"))
    )
    parser.add_argument("--host", default=os.environ.get("MLOPS_HOST", "0.0.0.0"))  # noqa: S104
    parser.add_argument("--port", type=int, default=int(os.environ.get("MLOPS_PORT", "8080")))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("MLOPS_WORKERS", "1")))
    args = parser.parse_args(argv)
    from gitops_mlops.serving.model import check
    from gitops_mlops.serving.trust import UntrustedModelError

    try:  # a refused model is an error message and exit 1, not a server traceback
        check(args.model_dir)
    except UntrustedModelError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    import uvicorn

    os.environ["MLOPS_MODEL_DIR"] = str(args.model_dir)
    uvicorn.run(
        "gitops_mlops.serving.factory:create",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
