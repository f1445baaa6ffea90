"""python -m client COMMAND [--grpc] ...: predictions and model-version management for asl-serve.

    predict IMG... [--version V] [--top-k K]      classify images
    models                                        versions, the default, workers and their status
    register PATH.mar                             register an archive from the server's model store
    unregister VERSION | set-default VERSION
    scale [--version V] --min-workers N --max-workers N
    wait-ready [--timeout S]                      (REST only) wait until every version is READY

Every command but wait-ready goes over REST, or over gRPC with --grpc. Failures print one line on
stderr and exit 1.
"""

import argparse
import json
import sys
from pathlib import Path

from client.rest import RestClient
from client.settings import MODEL, ClientError, Server


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m client", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    transport = argparse.ArgumentParser(add_help=False)
    transport.add_argument("--grpc", action="store_true", help="use TorchServe's gRPC API instead of REST")
    commands = parser.add_subparsers(dest="command", required=True)

    predict = commands.add_parser("predict", parents=[transport], help="classify images")
    predict.add_argument("images", nargs="+", type=Path)
    predict.add_argument("--version", help="model version, e.g. 1.0-fp32 (default: the default version)")
    predict.add_argument("--top-k", type=int)
    commands.add_parser("models", parents=[transport], help="versions, default, workers and their status")
    register = commands.add_parser("register", parents=[transport], help="register an archive")
    register.add_argument("archive", help="PATH.mar in the server's model store (only the name is sent)")
    for name, purpose in (("unregister", "remove a version"), ("set-default", "make a version the default")):
        commands.add_parser(name, parents=[transport], help=purpose).add_argument("version")
    scale = commands.add_parser("scale", parents=[transport], help="set the worker range of a version")
    scale.add_argument("--version", help="default: the default version")
    scale.add_argument("--min-workers", type=int, required=True)
    scale.add_argument("--max-workers", type=int, required=True)
    wait = commands.add_parser("wait-ready", help="wait until every version of asl is READY")
    wait.add_argument("--timeout", type=float, default=180)
    return parser.parse_args(argv)


def archive_name(archive: str) -> str:
    """The name TorchServe looks up in its model store; URLs pass through for the server to judge."""
    return archive if "://" in archive else Path(archive).name


def describe_versions(client) -> list[str]:
    """One line per version of the model; `client` is a RestClient or a GrpcClient."""
    default = client.default_version()
    lines = []
    for version in client.describe():
        workers = ", ".join(f"{w['id']} {w['status']}" for w in version["workers"]) or "none"
        mark = " (default)" if version["modelVersion"] == default else ""
        lines.append(
            f"{MODEL} {version['modelVersion']}{mark}: "
            f"workers {workers} (min {version['minWorkers']}, max {version['maxWorkers']}), "
            f"{version['jobQueueStatus']['pendingRequests']} pending"
        )
    return lines


def run(args: argparse.Namespace, server: Server) -> None:
    if args.command == "wait-ready":
        rest = RestClient(server)
        rest.wait_ready(args.timeout)
        print("\n".join(describe_versions(rest)))
        return
    if args.grpc:
        from client.grpc_client import GrpcClient  # on demand: importing it builds the stubs if missing

        client = GrpcClient(server)
    else:
        client = RestClient(server)
    if args.command == "predict":
        for image in args.images:
            print(json.dumps({"image": str(image), **client.predict(image, args.version, args.top_k)}))
    elif args.command == "models":
        print("\n".join(describe_versions(client)))
    elif args.command == "register":
        print(client.register(archive_name(args.archive)))
    elif args.command == "unregister":
        print(client.unregister(args.version))
    elif args.command == "set-default":
        print(client.set_default(args.version))
    elif args.command == "scale":
        print(client.scale(args.min_workers, args.max_workers, args.version))


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        run(args, Server.from_env())
    except (ClientError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
