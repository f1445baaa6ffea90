"""asl (or python -m asl_serve.client) COMMAND: predictions and model-version management for asl-serve.

    predict PATH... [--version V] [--top-k K] [--format jsonl|csv]   classify image files and folders
    describe [--version V]                        the model's metadata (classes, input, variant, accuracy)
    models                                        versions, the default, workers and their status
    register PATH.mar                             register an archive from the server's model store
    unregister VERSION | set-default VERSION
    scale [--version V] --min-workers N --max-workers N
    wait-ready [--wait S]                         (REST only) wait until every version is READY
    rotate-key inference|management               (REST only) a new key in TorchServe's key file

Every command but wait-ready and rotate-key goes over REST, or over gRPC with --grpc. The options shown under
"server" go before or after the command. Refused connections and 503s are retried with backoff.
Failures print `error: ...` on stderr and exit 1; `predict` goes on past images that fail, names
each one, and exits 1 at the end if any did. A wrong command line exits 2 with its usage. Ctrl-C
exits 130; `predict` first prints its summary so far.
"""

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from asl_serve.client.batch import CSV_FIELDS, FORMATS, expand, predict_all, render, summary
from asl_serve.client.rest import RestClient
from asl_serve.client.settings import STARTUP_TIMEOUT_S, TIMEOUT_S, ClientError, Server
from asl_serve.model.classes import CLASS_NAMES
from asl_serve.model.config import MODEL_NAME

RETRIES = 3  # the CLI's default; the Python clients retry only when asked
INTERRUPTED = 130  # the shell's exit status for Ctrl-C (128 + SIGINT)


def top_k(text: str) -> int:
    """argparse type: how many classes to list, 1..29."""
    if not text.isdigit() or not 1 <= int(text) <= len(CLASS_NAMES):
        raise argparse.ArgumentTypeError(f"must be an integer from 1 to {len(CLASS_NAMES)}, got {text!r}")
    return int(text)


def server_options(suppress: bool) -> argparse.ArgumentParser:
    """The options every command takes; a command's copy suppresses defaults so a value given before
    the command is not overwritten by the default after it."""
    def default(value):
        return argparse.SUPPRESS if suppress else value

    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("server (before or after the command)")
    group.add_argument("--grpc", action="store_true", default=default(False),
                       help="use TorchServe's gRPC API instead of REST")
    group.add_argument("--inference-url", default=default(None), help="REST inference API (env ASL_INFERENCE_URL)")
    group.add_argument("--management-url", default=default(None),
                       help="REST management API (env ASL_MANAGEMENT_URL)")
    group.add_argument("--grpc-inference", default=default(None),
                       help="gRPC inference HOST:PORT (env ASL_GRPC_INFERENCE)")
    group.add_argument("--grpc-management", default=default(None),
                       help="gRPC management HOST:PORT (env ASL_GRPC_MANAGEMENT)")
    group.add_argument("--key-file", type=Path, default=default(None),
                       help="TorchServe's key_file.json (env ASL_KEY_FILE)")
    group.add_argument("--timeout", type=float, default=default(TIMEOUT_S),
                       help=f"seconds per call (default {TIMEOUT_S})")
    group.add_argument("--retries", type=int, default=default(RETRIES),
                       help=f"retries after a refused connection or a 503, with backoff (default {RETRIES})")
    return parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asl", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[server_options(suppress=False)],
    )
    server = server_options(suppress=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     help="what to do; `asl COMMAND --help` for its options")

    def command(name: str, purpose: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, parents=[server], help=purpose, description=purpose)

    predict = command("predict", "classify image files and every image in folders (recursively)")
    predict.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                         help="image files, or folders; folders named by class (A, b, space...) give accuracy")
    predict.add_argument("--version", help="model version, e.g. 1.0-fp32 (default: the default version)")
    predict.add_argument("--top-k", type=top_k, metavar="K",
                         help=f"how many classes to list, 1..{len(CLASS_NAMES)} (server default: 5)")
    predict.add_argument("--format", choices=FORMATS, default="jsonl",
                         help="stdout: one JSON object or CSV record per image (default jsonl)")
    describe = command("describe", "the model's metadata: classes, input, variant, build, accuracy per set")
    describe.add_argument("--version", help="default: the default version")
    command("models", "versions, default, workers and their status")
    register = command("register", "register an archive from the server's model store")
    register.add_argument("archive", help="PATH.mar in the server's model store (only the name is sent)")
    for name, purpose in (("unregister", "remove a version"), ("set-default", "make a version the default")):
        command(name, purpose).add_argument("version", help="e.g. 1.1-int8")
    scale = command("scale", "set the worker range of a version")
    scale.add_argument("--version", help="default: the default version")
    scale.add_argument("--min-workers", type=int, required=True, help="workers kept running")
    scale.add_argument("--max-workers", type=int, required=True, help="workers TorchServe may scale up to")
    wait = command("wait-ready", "wait until every version of asl is READY (REST)")
    wait.add_argument("--wait", type=float, default=STARTUP_TIMEOUT_S, dest="wait_s", metavar="SECONDS",
                      help=f"how long to wait (default {STARTUP_TIMEOUT_S})")
    rotate = command("rotate-key", "replace the inference or management key (REST, with the API key); the old "
                             "one is refused from then on")
    rotate.add_argument("kind", choices=("inference", "management"), help="which key to replace")
    return parser


def target(args: argparse.Namespace) -> Server:
    """The environment's server (Server.from_env), with any address or key file given as an option."""
    given = {field: getattr(args, field) for field in
             ("inference_url", "management_url", "grpc_inference", "grpc_management", "key_file")}
    return dataclasses.replace(Server.from_env(), **{k: v for k, v in given.items() if v is not None})


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
            f"{MODEL_NAME} {version['modelVersion']}{mark}: "
            f"workers {workers} (min {version['minWorkers']}, max {version['maxWorkers']}), "
            f"{version['jobQueueStatus']['pendingRequests']} pending"
        )
    return lines


def predict(client, args: argparse.Namespace) -> int:
    """Rows on stdout as they come, each failure and the summary on stderr; 1 if any image failed."""
    images = expand(args.paths)
    if not images:
        raise ClientError(f"no images in {', '.join(map(str, args.paths))}")
    if args.format == "csv":
        print(",".join(CSV_FIELDS))
    rows = []
    try:
        for row in predict_all(images, lambda image: client.predict(image, args.version, args.top_k)):
            rows.append(row)
            print(render(row, args.format), flush=True)
            if row.error:
                print(f"error: {row.image}: {row.error}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"interrupted after {len(rows)} of {len(images)} images", file=sys.stderr)
        print("\n".join(summary(rows)), file=sys.stderr)
        return INTERRUPTED
    print("\n".join(summary(rows)), file=sys.stderr)
    return 1 if any(row.error for row in rows) else 0


def known_versions(client) -> tuple[list[str], str]:
    """The model's versions, and how an error message names them (or why they cannot be listed)."""
    try:
        versions = [version["modelVersion"] for version in client.describe()]
    except ClientError as error:
        return [], f"cannot list them: {error}"
    return versions, ", ".join(versions)


def run(args: argparse.Namespace, server: Server) -> int:
    if args.command == "wait-ready":
        rest = RestClient(server, args.timeout)
        rest.wait_ready(args.wait_s)
        print("\n".join(describe_versions(rest)))
        return 0
    if args.command == "rotate-key":
        RestClient(server, args.timeout).rotate_key(args.kind)
        print(f"new {args.kind} key written to {server.key_file}; this repository's clients read it from there "
              "at each call, anything that copied the old key needs the new one")
        return 0
    if args.grpc:
        try:  # on demand: REST needs no stubs
            from asl_serve.client.grpc_client import GrpcClient
        except ImportError as missing:
            raise ClientError(str(missing)) from None
        client = GrpcClient(server, args.timeout, args.retries)
    else:
        client = RestClient(server, args.timeout, args.retries)
    try:
        return command(client, args)
    except ClientError as error:
        version = getattr(args, "version", None)
        if not version:
            raise
        versions, listed = known_versions(client)
        if version not in versions:
            raise ClientError(f"{error} ({MODEL_NAME} has no version {version!r}; its versions: {listed})") from None
        raise


def command(client, args: argparse.Namespace) -> int:
    """One command on a RestClient or a GrpcClient."""
    if args.command == "predict":
        return predict(client, args)
    if args.command == "describe":
        print(json.dumps(client.metadata(args.version), indent=1))
    elif args.command == "models":
        print("\n".join(describe_versions(client)))
    elif args.command == "register":
        print(client.register(archive_name(args.archive)))
    elif args.command == "unregister":
        client.unregister(args.version)
        print(f"{MODEL_NAME} {args.version} unregistered")
    elif args.command == "set-default":
        print(client.set_default(args.version))
    elif args.command == "scale":
        print(client.scale(args.min_workers, args.max_workers, args.version))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args, target(args))
    except (ClientError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
