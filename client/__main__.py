"""python -m client predict IMG... [--version V] [--top-k K] | wait-ready [--timeout S]"""

import argparse
import json
import sys
from pathlib import Path

from client.rest import RestClient
from client.settings import ClientError, Server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m client", description="Talk to the asl-serve TorchServe.")
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", help="classify images")
    predict.add_argument("images", nargs="+", type=Path)
    predict.add_argument("--version", help="model version, e.g. 1.0-fp32 (default: the default version)")
    predict.add_argument("--top-k", type=int)
    wait = commands.add_parser("wait-ready", help="wait until every version of asl is READY")
    wait.add_argument("--timeout", type=float, default=180)
    args = parser.parse_args(argv)
    rest = RestClient(Server.from_env())
    try:
        if args.command == "predict":
            for image in args.images:
                print(json.dumps({"image": str(image), **rest.predict(image, args.version, args.top_k)}))
        else:
            for version in rest.wait_ready(args.timeout):
                default = " (default)" if version.get("isDefault", False) else ""
                print(f"asl {version['modelVersion']}{default}: READY")
    except (ClientError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
